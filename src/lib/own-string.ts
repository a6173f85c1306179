// Strings kept for long from text read in bulk (a scraped body, a log chunk).
//
// A string that holds its own characters: V8 makes a slice of a string of 13 characters or more a
// view into the whole, so a label value sliced from a scraped body and kept for later scrapes
// would keep that whole body alive. JSON's round trip gives a flat copy of any string (lone
// surrogates included, which JSON.stringify escapes); slicing a joined string, the other way to
// copy, keeps a 24-byte view on top of its copy, for every string kept.

export function ownString(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/**
 * One kept copy per distinct value, for values that repeat across many kept things (a family's
 * name, a label value such as GET or 200 on 10 000 series): each would otherwise be a string of
 * its own. Bounded: past `max` distinct values it starts afresh (the values kept stay valid).
 */
export class Interner {
  #seen = new Map<string, string>();

  constructor(private readonly max = 100_000) {}

  intern(s: string): string {
    let own = this.#seen.get(s);
    if (own === undefined) {
      if (this.#seen.size >= this.max) this.#seen.clear();
      own = ownString(s);
      this.#seen.set(own, own);
    }
    return own;
  }

  /**
   * A label value's kept copy: short ones (GET, 200, a shard) repeat across series and are
   * shared; long ones (a path, an id) are mostly one series' own and are copied.
   */
  labelValue(s: string): string {
    return s.length <= 12 ? this.intern(s) : ownString(s);
  }
}
