// A JSON document read for a few paths, straight from its bytes. The rules of a scrape usually
// want a handful of fields of every element of one list ($.items[*], then $.name and $.value of
// each); JSON.parse would build every object and string of the document first, all of it live
// while the rules are applied, so a 10 000-element body made tens of thousands of objects that
// the young generation copied, scrape after scrape. Here the body is validated byte by byte as
// RFC 8259 says and nothing is made of it: for each element, where each wanted value is in the
// bytes and what kind it is. The mapper makes a string or a number of one only when it needs it;
// a label whose bytes are what it was at the last scrape needs none.
//
// The answer is the one JSON.parse and a walk of its result would give, or none: where
// JSON.parse's own rules would decide something this reader does not model (a key met twice on
// the way to an element, keys of an object read in an order other than the text's), or where
// the document is not JSON at all, `scan` says so and the caller parses the whole text, which
// also gives JSON.parse's own error message.
//
// The log role validates JSON too (src/logs/parsers/json-scan.ts), over decoded strings, one line
// at a time. One grammar for both was tried: run over this body as a latin1 string it took 8.3 ms
// for 10 000 elements against 4.7 ms over the bytes, and the log scanner, its functions taking the
// text as an argument, 12-20 % longer per line; so each keeps its own, both held to JSON.parse by
// the same kind of differential tests.

/** Where a wanted path ends on an object or on a list: a value that is not a scalar. */
export const AN_OBJECT: object = Object.freeze({});
export const A_LIST: readonly unknown[] = Object.freeze([]);

/** What one rule wants: where its elements are, and the paths read from each (plain keys). */
export interface ScanRule {
  /** The keys from the document's root to the element ($.a.b), or to the list or map of them. */
  container: readonly string[];
  /** True when every child of the container is an element ($.a.b[*], $.a.b.*). */
  each: boolean;
  /** The paths read from each element, its slots ([] is the element itself). */
  slots: readonly (readonly string[])[];
}

/**
 * Per rule, its elements in the document's order, flat: the element's key (its index in a list,
 * its key in a map, the last key of a one-element path), then for each slot where its value is
 * in the bytes: its kind (MISSING, STRING, ...) and its first and last byte + 1. Nothing is made
 * of a value until it is asked for (slotValue): a series whose labels are the bytes it had at the
 * last scrape needs no string at all (sameText).
 */
export type ScanResult = Elements[];

/**
 * One rule's elements, flat in a typed array kept from one scan to the next: 10 000 elements
 * pushed into a JS array would cost more than reading them (its store regrown in the large-object
 * space). A key that is not a list's index is kept aside, its cell -1 - its place there.
 */
export class Elements {
  cells = new Int32Array(1024);
  /** The cells in use. */
  length = 0;
  readonly #keys: (string | undefined)[] = [];
  /** The element being read: its slots' cells, then its key's cell. */
  readonly row: Int32Array;
  #key = 0;

  constructor(width: number) {
    this.row = new Int32Array(width * CELLS);
  }

  reset(): void {
    this.length = 0;
    this.#keys.length = 0;
  }

  begin(key: string | number | undefined): void {
    this.row.fill(0);
    this.#key = typeof key === 'number' ? key : -this.#keys.push(key);
  }

  /** The element read to its end. */
  end(): void {
    const need = this.length + 1 + this.row.length;
    if (need > this.cells.length) {
      const grown = new Int32Array(Math.max(need, this.cells.length * 2));
      grown.set(this.cells.subarray(0, this.length));
      this.cells = grown;
    }
    this.cells[this.length] = this.#key;
    this.cells.set(this.row, this.length + 1);
    this.length = need;
  }

  /** The key of the element whose cells start at `at`. */
  keyAt(at: number): string | number | undefined {
    const k = this.cells[at]!;
    return k >= 0 ? k : this.#keys[-1 - k];
  }
}

/** A slot's kinds of value. */
export const MISSING = 0;
/** A string, its bytes between its quotes: ASCII, not escaped. */
export const ASCII = 1;
/** A string with bytes over 0x7f, not escaped. */
export const UTF8 = 2;
/** A string with a backslash in it. */
export const ESCAPED = 3;
export const NUMBER = 4;
export const TRUE_ = 5;
export const FALSE_ = 6;
export const NULL_ = 7;
export const OBJECT = 8;
export const LIST = 9;

/** The cells a slot takes in a ScanResult: kind, start, end. */
export const CELLS = 3;

/** The value of the slot whose cells start at `at` in row, as JSON.parse would give it. */
export function slotValue(b: Buffer, row: ArrayLike<number>, at: number): unknown {
  const kind = row[at] as number;
  const s = row[at + 1] as number;
  const e = row[at + 2] as number;
  switch (kind) {
    case ASCII:
      return latin1(b, s, e);
    case UTF8:
      return utf8(b, s, e);
    case ESCAPED:
      return JSON.parse(utf8(b, s - 1, e + 1)) as string;
    case NUMBER:
      return numberAt(b, s, e);
    case TRUE_:
      return true;
    case FALSE_:
      return false;
    case NULL_:
      return null;
    case OBJECT:
      return AN_OBJECT;
    case LIST:
      return A_LIST;
    default:
      return undefined;
  }
}

/** The number of a NUMBER slot, made without a string when it is a short integer. */
export function slotNumber(b: Buffer, row: ArrayLike<number>, at: number): number {
  return numberAt(b, row[at + 1] as number, row[at + 2] as number);
}

/** Whether an ASCII slot's bytes are text[from, to), compared without making a string. */
export function sameText(
  b: Buffer,
  row: ArrayLike<number>,
  at: number,
  text: string,
  from: number,
  to: number,
): boolean {
  const s = row[at + 1] as number;
  if ((row[at + 2] as number) - s !== to - from) return false;
  for (let k = 0; k < to - from; k++) if (b[s + k] !== text.charCodeAt(from + k)) return false;
  return true;
}

class PlanNode {
  /** Children by key, when this value is an object on a wanted path. */
  readonly children = new Map<string, PlanNode>();
  /** Every child is this node (the children of an `each` container). */
  each: PlanNode | undefined;
  /** Rules whose element is this value. */
  readonly elementOf: number[] = [];
  /** Rules whose elements are this value's children. */
  readonly eachOf: number[] = [];
  /** Slots this value is stored into, as rule, slot pairs. */
  readonly captures: number[] = [];
  /** Slots stored at or below this node, emptied when the value is met again (the last wins). */
  resets: number[] = [];
  /** An element or a container at or below: a second time on the way to it, JSON.parse decides. */
  guarded = false;
  keyBytes: Uint8Array[] = [];
  keyNodes: PlanNode[] = [];

  constructor(readonly name: string | undefined) {}
}

/** A key JSON.parse's objects and lists answer from their prototype, or a list's index. */
function unsafeKey(k: string): boolean {
  return k in Object.prototype || k in Array.prototype || arrayIndexKey(k);
}

/** A plan for these rules, or undefined when one of their paths is not read by this reader. */
export function scanPlan(rules: readonly ScanRule[]): JsonScan | undefined {
  const root = new PlanNode(undefined);
  const at = (from: PlanNode, keys: readonly string[]): PlanNode => {
    let n = from;
    for (const k of keys) {
      let c = n.children.get(k);
      if (!c) n.children.set(k, (c = new PlanNode(k)));
      n = c;
    }
    return n;
  };
  for (const [r, rule] of rules.entries()) {
    if ([rule.container, ...rule.slots].some((keys) => keys.some(unsafeKey))) return undefined;
    let element = at(root, rule.container);
    if (rule.each) {
      element.eachOf.push(r);
      element.each ??= new PlanNode(undefined);
      element = element.each;
    }
    element.elementOf.push(r);
    for (const [s, keys] of rule.slots.entries()) at(element, keys).captures.push(r, s);
  }
  let plannable = true;
  const finish = (n: PlanNode): void => {
    // A map read whole and for some of its keys: its keys' order would matter, JSON.parse's.
    if (n.each && n.children.size > 0) plannable = false;
    for (const c of n.children.values()) finish(c);
    if (n.each) finish(n.each);
    const below = [...n.children.values(), ...(n.each ? [n.each] : [])];
    n.resets = [...n.captures, ...below.flatMap((c) => c.resets)];
    n.guarded = n.elementOf.length > 0 || n.eachOf.length > 0 || below.some((c) => c.guarded);
    n.keyBytes = [...n.children.keys()].map((k) => Buffer.from(k));
    n.keyNodes = [...n.children.values()];
  };
  finish(root);
  return plannable ? new JsonScan(root, rules) : undefined;
}

// What readString learnt of the string it passed: a backslash in it, a byte over 0x7f.
let escaped = false;
let high = false;

/** The index after the string whose opening quote is at i, or -1 when it is not valid JSON. */
function readString(b: Uint8Array, i: number): number {
  escaped = false;
  high = false;
  const n = b.length;
  for (i++; i < n; i++) {
    const c = b[i]!;
    if (c === 34) return i + 1;
    if (c === 92) {
      escaped = true;
      const e = b[++i];
      if (e === 117 /* u */) {
        for (let h = 1; h <= 4; h++) if (!isHex(b[i + h])) return -1;
        i += 4;
      } else if (
        e !== 34 &&
        e !== 92 &&
        e !== 47 &&
        e !== 98 &&
        e !== 102 &&
        e !== 110 &&
        e !== 114 &&
        e !== 116
      )
        return -1;
    } else if (c < 32) return -1;
    else if (c > 127) high = true;
  }
  return -1;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102));
}

/** The index after the number that starts at i, or -1 when it is not valid JSON. */
function readNumber(b: Uint8Array, i: number): number {
  if (b[i] === 45) i++;
  if (b[i] === 48) i++;
  else if (isDigit(b[i])) while (isDigit(b[++i]));
  else return -1;
  if (b[i] === 46) {
    if (!isDigit(b[++i])) return -1;
    while (isDigit(b[++i]));
  }
  if (b[i] === 101 || b[i] === 69) {
    i++;
    if (b[i] === 43 || b[i] === 45) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[++i]));
  }
  return i;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 48 && c <= 57;
}

function literal(b: Uint8Array, i: number, word: Uint8Array): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

function skipSpace(b: Uint8Array, i: number): number {
  for (;;) {
    const c = b[i];
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return i;
    i++;
  }
}

// Buffer's own slicers (what toString calls after checking its arguments), when there.
interface Slicers {
  latin1Slice?: (s: number, e: number) => string;
  utf8Slice?: (s: number, e: number) => string;
}
const SLICERS = Buffer.prototype as Slicers;
const latin1 =
  typeof SLICERS.latin1Slice === 'function'
    ? (b: Buffer, s: number, e: number) => (b as Slicers).latin1Slice!(s, e)
    : (b: Buffer, s: number, e: number) => b.toString('latin1', s, e);
const utf8 =
  typeof SLICERS.utf8Slice === 'function'
    ? (b: Buffer, s: number, e: number) => (b as Slicers).utf8Slice!(s, e)
    : (b: Buffer, s: number, e: number) => b.toString('utf8', s, e);

/** The text of a string whose quotes are at s - 1 and e - 1 (as JSON.parse reads it). */
function stringAt(b: Buffer, s: number, e: number): string {
  if (escaped) return JSON.parse(utf8(b, s - 1, e)) as string;
  return high ? utf8(b, s, e - 1) : latin1(b, s, e - 1);
}

/** The number b[s, e) (valid JSON): short integers summed here, the rest by Number. */
function numberAt(b: Buffer, s: number, e: number): number {
  const negative = b[s] === 45;
  let v = 0;
  for (let k = negative ? s + 1 : s; k < e; k++) {
    const d = b[k]! - 48;
    if (d < 0 || d > 9 || k - s > 15) return Number(latin1(b, s, e));
    v = v * 10 + d;
  }
  return negative ? -v : v;
}

/** An index JSON.parse would order before an object's other keys. */
function arrayIndexKey(k: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(k) && Number(k) < 4_294_967_295;
}

const OBJ = 1;
const ARR = 2;

export class JsonScan {
  readonly #root: PlanNode;
  readonly #each: readonly boolean[];
  readonly #elements: Elements[];

  constructor(root: PlanNode, rules: readonly ScanRule[]) {
    this.#root = root;
    this.#each = rules.map((r) => r.each);
    this.#elements = rules.map((r) => new Elements(r.slots.length));
  }

  /**
   * Each rule's elements (see ScanResult) and, per rule, how many values its path matched; or
   * undefined when the document is not JSON or JSON.parse must decide (see above).
   */
  scan(b: Buffer): { elements: ScanResult; matched: number[] } | undefined {
    const each = this.#each;
    const elements = this.#elements;
    for (const e of elements) e.reset();
    const matched = elements.map(() => 0);
    // The containers on a wanted path open around the value being read (those read past are
    // skipValue's), and per object the keys met when a key twice matters.
    const kinds: number[] = [];
    const nodes: PlanNode[] = [];
    const counts: number[] = [];
    const keys: (Set<string> | undefined)[] = [];
    let depth = 0;

    const n = b.length;
    let i = skipSpace(b, 0);
    // The value about to be read: its plan node (null: read past) and its key when an element.
    let node: PlanNode | null = this.#root;
    let key: unknown = undefined;
    for (;;) {
      let closed = false;
      if (node === null) {
        i = skipValue(b, i);
        if (i < 0) return undefined;
      } else {
        for (const r of node.elementOf)
          elements[r]!.begin(key === undefined ? node.name : (key as string | number));
        const resets = node.resets;
        for (let k = 0; k < resets.length; k += 2)
          setSlot(elements, resets[k]!, resets[k + 1]!, MISSING, 0, 0);
        const c = b[i];
        const captures = node.captures;
        if (c === 123 /* { */ || c === 91 /* [ */) {
          const kind = c === 123 ? OBJ : ARR;
          const marker = kind === OBJ ? OBJECT : LIST;
          for (let k = 0; k < captures.length; k += 2)
            setSlot(elements, captures[k]!, captures[k + 1]!, marker, i, i);
          kinds[depth] = kind;
          nodes[depth] = node;
          counts[depth] = 0;
          keys[depth] = undefined;
          depth++;
          i = skipSpace(b, i + 1);
          if (b[i] === (kind === OBJ ? 125 : 93)) {
            i++;
            closed = true;
          } else {
            i = child(b, i, node, kind, 0, keys, depth - 1);
            if (i < 0) return undefined;
            node = nextNode;
            key = nextKey;
            continue;
          }
        } else {
          let e: number;
          let kind: number;
          let from = i;
          if (c === 34) {
            e = readString(b, i);
            kind = escaped ? ESCAPED : high ? UTF8 : ASCII;
            from = i + 1;
          } else if (c === 116) {
            e = literal(b, i, TRUE);
            kind = TRUE_;
          } else if (c === 102) {
            e = literal(b, i, FALSE);
            kind = FALSE_;
          } else if (c === 110) {
            e = literal(b, i, NULL);
            kind = NULL_;
          } else {
            e = readNumber(b, i);
            kind = NUMBER;
          }
          if (e < 0) return undefined;
          // A string's slot is what is between its quotes.
          const to = c === 34 ? e - 1 : e;
          for (let k = 0; k < captures.length; k += 2)
            setSlot(elements, captures[k]!, captures[k + 1]!, kind, from, to);
          ended(node, 0, elements, matched, each);
          i = e;
        }
      }
      // After a value: close what it closes, then on to the next value.
      for (;;) {
        if (closed) {
          depth--;
          ended(nodes[depth]!, counts[depth]!, elements, matched, each);
        }
        i = skipSpace(b, i);
        if (depth === 0) return i === n ? { elements, matched } : undefined;
        const kind = kinds[depth - 1]!;
        const ch = b[i];
        if (ch === 44 /* , */) {
          const count = ++counts[depth - 1]!;
          i = child(b, skipSpace(b, i + 1), nodes[depth - 1]!, kind, count, keys, depth - 1);
          if (i < 0) return undefined;
          node = nextNode;
          key = nextKey;
          break;
        }
        if (ch !== (kind === OBJ ? 125 : 93)) return undefined;
        counts[depth - 1]!++;
        i++;
        closed = true;
      }
    }
  }
}

// Module functions rather than closures of scan: made once, their optimized code lasts.

/** Sets a slot's cells: its kind and where its value is. */
function setSlot(elements: ScanResult, rule: number, slot: number, kind: number, s: number, e: number): void {
  const row = elements[rule]!.row;
  const at = slot * CELLS;
  row[at] = kind;
  row[at + 1] = s;
  row[at + 2] = e;
}

/**
 * A value on a wanted path read to its end (`children`: how many a list or an object held):
 * counted for the rules whose elements are its children, and ended as an element.
 */
function ended(
  node: PlanNode,
  children: number,
  elements: ScanResult,
  matched: number[],
  each: readonly boolean[],
): void {
  for (const r of node.eachOf) matched[r]! += children;
  for (const r of node.elementOf) {
    elements[r]!.end();
    if (!each[r]) matched[r]!++;
  }
}

/**
 * The next value in a container on a wanted path, from its first byte (a list's element, at
 * `count`) or from its member's name (an object's, see member): the index of the value's first
 * byte, or -1; nextNode and nextKey say what the value is.
 */
function child(
  b: Buffer,
  i: number,
  parent: PlanNode,
  kind: number,
  count: number,
  keys: (Set<string> | undefined)[],
  at: number,
): number {
  if (kind === OBJ) return member(b, i, parent, keys, at);
  nextNode = parent.each ?? null;
  nextKey = count;
  return i;
}

// What member (or child) found: the value's plan node and its key when it is an element of a map.
let nextNode: PlanNode | null = null;
let nextKey: unknown = undefined;

/**
 * A member of an object on a wanted path, from its key to its value's first byte (the index
 * returned; nextNode and nextKey say what the value is). -1 when the text is not JSON or
 * JSON.parse must decide: a key met twice on the way to an element, a map read whole whose
 * keys JSON.parse would reorder.
 */
function member(
  b: Buffer,
  i: number,
  parent: PlanNode,
  keys: (Set<string> | undefined)[],
  at: number,
): number {
  if (b[i] !== 34) return -1;
  const e = readString(b, i);
  if (e < 0) return -1;
  nextNode = null;
  nextKey = undefined;
  if (parent.each) {
    const k = stringAt(b, i + 1, e);
    if (arrayIndexKey(k)) return -1;
    const seen = (keys[at] ??= new Set());
    if (seen.has(k)) return -1;
    seen.add(k);
    nextNode = parent.each;
    nextKey = k;
  } else if (parent.keyNodes.length > 0) {
    const node =
      escaped || high ? (parent.children.get(stringAt(b, i + 1, e)) ?? null) : match(b, i + 1, e - 1, parent);
    if (node !== null && node.guarded) {
      const seen = (keys[at] ??= new Set());
      if (seen.has(node.name!)) return -1;
      seen.add(node.name!);
    }
    nextNode = node;
  }
  i = skipSpace(b, e);
  if (b[i] !== 58 /* : */) return -1;
  return skipSpace(b, i + 1);
}

// The open containers of the value skipValue reads past.
const skipping: number[] = [];

/** The index after the value that starts at i, validated and read past; -1 if not JSON. */
function skipValue(b: Uint8Array, i: number): number {
  let depth = 0;
  for (;;) {
    const c = b[i];
    if (c === 123 || c === 91) {
      skipping[depth++] = c;
      i = skipSpace(b, i + 1);
      if (b[i] === c + 2 /* } or ] */) i++;
      else {
        if (c === 123 && (i = skipKey(b, i)) < 0) return -1;
        continue;
      }
      depth--;
    } else if ((i = skipScalar(b, i, c)) < 0) return -1;
    for (;;) {
      if (depth === 0) return i;
      i = skipSpace(b, i);
      const open = skipping[depth - 1]!;
      const ch = b[i];
      if (ch === 44) {
        i = skipSpace(b, i + 1);
        if (open === 123 && (i = skipKey(b, i)) < 0) return -1;
        break;
      }
      if (ch !== open + 2) return -1;
      i++;
      depth--;
    }
  }
}

/** From a key's opening quote to the first byte of its value; -1 if not JSON. */
function skipKey(b: Uint8Array, i: number): number {
  if (b[i] !== 34) return -1;
  const e = readString(b, i);
  if (e < 0) return -1;
  i = skipSpace(b, e);
  return b[i] === 58 ? skipSpace(b, i + 1) : -1;
}

function skipScalar(b: Uint8Array, i: number, c: number | undefined): number {
  if (c === 34) return readString(b, i);
  if (c === 116) return literal(b, i, TRUE);
  if (c === 102) return literal(b, i, FALSE);
  if (c === 110) return literal(b, i, NULL);
  return readNumber(b, i);
}

/** The child of parent whose key is the bytes b[s, e), compared without making a string. */
function match(b: Uint8Array, s: number, e: number, parent: PlanNode): PlanNode | null {
  const len = e - s;
  const all = parent.keyBytes;
  outer: for (let k = 0; k < all.length; k++) {
    const want = all[k]!;
    if (want.length !== len) continue;
    for (let j = 0; j < len; j++) if (b[s + j] !== want[j]) continue outer;
    return parent.keyNodes[k]!;
  }
  return null;
}
