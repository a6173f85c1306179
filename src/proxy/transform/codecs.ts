// The body formats of the API adapter: JSON, form (application/x-www-form-urlencoded) and XML,
// each read into a plain value and written back from one. XML goes through fast-xml-parser
// (attributes as "@name" keys, text beside attributes as "#text"); a DOCTYPE is refused, so no
// entity of the sender's is ever expanded.

import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import type { BodyFormat } from './config.js';

export const CONTENT_TYPES: Record<BodyFormat, string> = {
  json: 'application/json',
  form: 'application/x-www-form-urlencoded',
  xml: 'application/xml',
};

/** A body that is not what its format says; the message names no part of the body. */
export class BodyFormatError extends Error {}

const XML_OPTIONS = {
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: false,
} as const;

const parser = new XMLParser(XML_OPTIONS);
const builder = new XMLBuilder({ ...XML_OPTIONS, suppressEmptyNode: false, format: false });

/** The body read as `format`; undefined for an empty body. */
export function decodeBody(body: Buffer, format: BodyFormat): unknown {
  if (body.length === 0) return undefined;
  const text = body.toString('utf8');
  switch (format) {
    case 'json':
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new BodyFormatError('the body is not JSON');
      }
    case 'form': {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of new URLSearchParams(text)) {
        const had = out[k];
        if (had === undefined) out[k] = v;
        else if (Array.isArray(had)) had.push(v);
        else out[k] = [had, v];
      }
      return out;
    }
    case 'xml': {
      if (/<!DOCTYPE/i.test(text)) throw new BodyFormatError('XML with a DOCTYPE is not accepted');
      if (XMLValidator.validate(text) !== true) throw new BodyFormatError('the body is not well-formed XML');
      return parser.parse(text) as unknown;
    }
  }
}

/** `value` written as `format`; an empty body for undefined. */
export function encodeBody(value: unknown, format: BodyFormat): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  switch (format) {
    case 'json':
      return Buffer.from(JSON.stringify(value));
    case 'form': {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw new BodyFormatError('a form body is written from an object of fields');
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(value)) {
        for (const one of Array.isArray(v) ? (v as unknown[]) : [v]) {
          if (one !== null && typeof one === 'object')
            throw new BodyFormatError(
              `form field "${k}" is an object: fields are strings, numbers or lists of them`,
            );
          if (one !== undefined) p.append(k, String(one));
        }
      }
      return Buffer.from(p.toString());
    }
    case 'xml': {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw new BodyFormatError('an XML body is written from an object with one root element');
      const keys = Object.keys(value).filter((k) => k !== '?xml');
      if (keys.length !== 1)
        throw new BodyFormatError(`an XML body has one root element, the object has ${keys.length} keys`);
      return Buffer.from(String(builder.build(value)));
    }
  }
}
