// Validates AsyncAPI documents with the official parser (@asyncapi/parser):
// `node validate.mjs FILE...`, each file one document or a JSON array of them.
// Prints every diagnostic; exits 1 when a document does not parse or has an
// error-level diagnostic.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const content = JSON.parse(readFileSync(file, 'utf8'));
  const documents = Array.isArray(content) ? content : [content];
  for (const [index, document] of documents.entries()) {
    const name = documents.length > 1 ? `${file}[${index}]` : file;
    const { document: parsed, diagnostics } = await parser.parse(JSON.stringify(document));
    for (const d of diagnostics) {
      console.log(`${name}: ${SEVERITY[d.severity]} ${d.code} at /${d.path.join('/')}: ${d.message}`);
    }
    if (!parsed || diagnostics.some((d) => d.severity === 0)) {
      failed = true;
    } else {
      console.log(`${name}: valid AsyncAPI ${parsed.version()}`);
    }
  }
}
process.exit(failed ? 1 : 0);
