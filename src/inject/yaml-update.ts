// Brings a YAML node to a new value while keeping what did not change as it was written: its
// comments, key order, quoting and flow style. Maps are updated key by key; lists of objects are
// matched item by item (the same item, else the same name), so a container pillion did not touch
// keeps its comments even when pillion is inserted before it.

import { isDeepStrictEqual } from 'node:util';
import { type Document, isMap, isNode, isScalar, isSeq, type Node, Pair, Scalar } from 'yaml';

export function updateNode(doc: Document, node: unknown, next: unknown): unknown {
  if (isNode(node) && isDeepStrictEqual(node.toJS(doc), next)) return node;
  if (isPlainObject(next)) next = Object.fromEntries(Object.entries(next).filter(([, v]) => v !== undefined));
  if (isMap(node) && isPlainObject(next)) {
    node.items = node.items.filter((p) => {
      const key = isScalar(p.key) ? String(p.key.value) : String(p.key);
      return Object.hasOwn(next as object, key);
    });
    for (const [key, value] of Object.entries(next as object)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key);
      if (pair) pair.value = updateNode(doc, pair.value, value) as Node;
      else node.items.push(new Pair(new Scalar(key), doc.createNode(value)));
    }
    return node;
  }
  if (isSeq(node) && Array.isArray(next)) {
    const old = node.items.map((item) => ({
      item,
      value: isNode(item) ? item.toJS(doc) : item,
      used: false,
    }));
    node.items = next.map((value) => {
      const same = old.find((o) => !o.used && isDeepStrictEqual(o.value, value));
      const named =
        same ??
        (isPlainObject(value) && typeof value.name === 'string'
          ? old.find((o) => !o.used && isPlainObject(o.value) && o.value.name === value.name)
          : undefined);
      if (named) {
        named.used = true;
        return updateNode(doc, named.item, value);
      }
      return doc.createNode(value);
    });
    return node;
  }
  return doc.createNode(next);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
