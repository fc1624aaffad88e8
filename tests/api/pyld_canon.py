"""Canonicalizes a JSON-LD document (proof removed) with pyld, a second, spec-conformant JSON-LD and
URDNA2015 implementation, using only the given pinned context documents (never the network).
Base direction is converted as the Data Integrity suites do (rdfDirection "i18n-datatype").

usage: python3 pyld_canon.py CONTEXTS.json < document.json > canonical.nq
CONTEXTS.json maps each context URL to its document text.
"""
import json
import sys

from pyld import jsonld

contexts = json.load(open(sys.argv[1]))


def loader(url, options=None):
    if url not in contexts:
        raise Exception("unknown context " + url)
    return {"contextUrl": None, "documentUrl": url, "document": json.loads(contexts[url])}


jsonld.set_document_loader(loader)
doc = json.load(sys.stdin)
doc.pop("proof", None)
try:
    nquads = jsonld.normalize(
        doc,
        {"algorithm": "URDNA2015", "format": "application/n-quads", "rdfDirection": "i18n-datatype"},
    )
except Exception as e:  # a document pyld refuses
    sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
    sys.exit(2)
sys.stdout.write(nquads)
