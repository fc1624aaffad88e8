// Canonicalizes a JSON-LD document (proof removed) the way @digitalbazaar/eddsa-rdfc-2022-cryptosuite
// does (lib/canonize.js: jsonld.js toRDF with rdfDirection "i18n-datatype", safe mode, no base,
// then RDFC-1.0), using only the given pinned context documents (never the network).
//
// usage: node canon.mjs CONTEXTS.json < document.json > canonical.nq
// CONTEXTS.json maps each context URL to its document text. A document jsonld.js refuses exits 2
// with the error on stderr.
import {readFileSync} from 'node:fs';
import jsonld from 'jsonld';

const contexts = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const documentLoader = async url => {
  if(!(url in contexts)) {
    throw new Error(`unknown context ${url}`);
  }
  return {contextUrl: null, documentUrl: url, document: JSON.parse(contexts[url])};
};
const doc = JSON.parse(readFileSync(0, 'utf8'));
delete doc.proof;
try {
  const nquads = await jsonld.canonize(doc, {
    algorithm: 'RDFC-1.0',
    format: 'application/n-quads',
    base: null,
    safe: true,
    rdfDirection: 'i18n-datatype',
    documentLoader
  });
  process.stdout.write(nquads);
} catch(e) {
  process.stderr.write(`${e.name}: ${e.message} ${JSON.stringify(e.details ?? {})}\n`);
  process.exit(2);
}
