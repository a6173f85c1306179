// A string that holds its own characters. V8 makes a slice of a string of 13 characters or more
// a view into the whole, so a label value sliced from a scraped body and kept for later scrapes
// would keep that whole body alive; joining it to another string and slicing that copies it.

export function ownString(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}
