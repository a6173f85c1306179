// `pillion schema`: prints the JSON Schema of pillion.yaml, for editors. Put
// `# yaml-language-server: $schema=./pillion.schema.json` at the top of the file.

import { pillionJsonSchema } from '../roles.js';

export async function schemaCommand(): Promise<number> {
  process.stdout.write(`${JSON.stringify(await pillionJsonSchema(), null, 2)}\n`);
  return 0;
}
