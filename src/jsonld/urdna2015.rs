//! RDF Dataset Canonicalization (RDFC-1.0, formerly URDNA2015) over the quads from expansion.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::JsonLdError;
use super::rdf::{BlankLabel, Node, Object, Quad};

/// Bound on the size of a group of indistinguishable blank nodes: the N-degree step tries every
/// permutation of such a group, and a credential never needs more than a handful.
const MAX_PERMUTED: usize = 8;

type Hash = [u8; 32];

/// Identifier issuer for the temporary `_:b` labels, in issue order.
#[derive(Clone, Default)]
struct TempIssuer {
    issued: Vec<u32>,
}

impl TempIssuer {
    fn get(&self, blank: u32) -> Option<usize> {
        self.issued.iter().position(|&b| b == blank)
    }

    fn issue(&mut self, blank: u32) -> usize {
        match self.get(blank) {
            Some(n) => n,
            None => {
                self.issued.push(blank);
                self.issued.len() - 1
            }
        }
    }
}

struct State<'q> {
    quads: &'q [Quad],
    /// Quads mentioning each blank node, by blank node number.
    blank_to_quads: Vec<Vec<usize>>,
    /// Canonical label number of each blank node, once issued.
    canonical: Vec<Option<u32>>,
    next_canonical: u32,
    buffer: String,
}

impl State<'_> {
    fn issue_canonical(&mut self, blank: u32) {
        let slot = &mut self.canonical[blank as usize];
        if slot.is_none() {
            *slot = Some(self.next_canonical);
            self.next_canonical += 1;
        }
    }

    /// Hash First Degree Quads (RDFC-1.0 §4.6).
    fn hash_first_degree(&mut self, reference: u32) -> Hash {
        let mut lines: Vec<String> =
            Vec::with_capacity(self.blank_to_quads[reference as usize].len());
        for &q in &self.blank_to_quads[reference as usize] {
            let mut line = String::new();
            self.quads[q].write_nquad(&mut line, &|b| {
                BlankLabel::Fixed(if b == reference { "a" } else { "z" })
            });
            lines.push(line);
        }
        lines.sort_unstable();
        let mut hasher = Sha256::new();
        for line in &lines {
            hasher.update(line.as_bytes());
        }
        hasher.finalize().into()
    }

    /// Hash Related Blank Node (RDFC-1.0 §4.7).
    fn hash_related(
        &mut self,
        related: u32,
        quad: usize,
        issuer: &TempIssuer,
        position: char,
    ) -> Hash {
        let mut input = String::new();
        input.push(position);
        if position != 'g' {
            input.push('<');
            input.push_str(self.quads[quad].predicate.as_str());
            input.push('>');
        }
        if let Some(c) = self.canonical[related as usize] {
            let _ = write!(input, "_:c14n{c}");
        } else if let Some(t) = issuer.get(related) {
            let _ = write!(input, "_:b{t}");
        } else {
            input.push_str(&hex::encode(self.hash_first_degree(related)));
        }
        Sha256::digest(input.as_bytes()).into()
    }

    /// Hash N-Degree Quads (RDFC-1.0 §4.8).
    fn hash_n_degree(
        &mut self,
        identifier: u32,
        mut issuer: TempIssuer,
    ) -> Result<(Hash, TempIssuer), JsonLdError> {
        let mut related_by_hash: BTreeMap<Hash, Vec<u32>> = BTreeMap::new();
        let quad_ids = self.blank_to_quads[identifier as usize].clone();
        for q in quad_ids {
            let quad = &self.quads[q];
            let mut components = Vec::with_capacity(3);
            if let Node::Blank(b) = quad.subject {
                components.push((b, 's'));
            }
            if let Object::Node(Node::Blank(b)) = quad.object {
                components.push((b, 'o'));
            }
            if let Some(Node::Blank(b)) = quad.graph {
                components.push((b, 'g'));
            }
            for (related, position) in components {
                if related != identifier {
                    let hash = self.hash_related(related, q, &issuer, position);
                    related_by_hash.entry(hash).or_default().push(related);
                }
            }
        }
        let mut data_to_hash = String::new();
        for (hash, blank_list) in related_by_hash {
            data_to_hash.push_str(&hex::encode(hash));
            if blank_list.len() > MAX_PERMUTED {
                return Err(JsonLdError::Unsupported(
                    "blank node graph too symmetric to canonicalize",
                ));
            }
            let mut chosen: Option<(String, TempIssuer)> = None;
            for permutation in permutations(&blank_list) {
                let mut issuer_copy = issuer.clone();
                let mut path = String::new();
                let mut recursion_list = Vec::new();
                let mut skip = false;
                for &related in &permutation {
                    if let Some(c) = self.canonical[related as usize] {
                        let _ = write!(path, "_:c14n{c}");
                    } else {
                        if issuer_copy.get(related).is_none() {
                            recursion_list.push(related);
                        }
                        let t = issuer_copy.issue(related);
                        let _ = write!(path, "_:b{t}");
                    }
                    if exceeds(&path, chosen.as_ref()) {
                        skip = true;
                        break;
                    }
                }
                if skip {
                    continue;
                }
                for related in recursion_list {
                    let (result_hash, result_issuer) =
                        self.hash_n_degree(related, issuer_copy.clone())?;
                    let t = issuer_copy.issue(related);
                    let _ = write!(path, "_:b{t}<{}>", hex::encode(result_hash));
                    issuer_copy = result_issuer;
                    if exceeds(&path, chosen.as_ref()) {
                        skip = true;
                        break;
                    }
                }
                if skip {
                    continue;
                }
                if chosen.as_ref().is_none_or(|(p, _)| path < *p) {
                    chosen = Some((path, issuer_copy));
                }
            }
            if let Some((path, chosen_issuer)) = chosen {
                data_to_hash.push_str(&path);
                issuer = chosen_issuer;
            }
        }
        Ok((Sha256::digest(data_to_hash.as_bytes()).into(), issuer))
    }
}

/// Whether a partial path can no longer beat the chosen one (RDFC-1.0 §4.8.3 steps 5.4.4.3, 5.4.5.5).
fn exceeds(path: &str, chosen: Option<&(String, TempIssuer)>) -> bool {
    chosen.is_some_and(|(c, _)| path.len() >= c.len() && path > c.as_str())
}

/// All orderings of `items` (Heap's algorithm; the order of generation does not matter because
/// the smallest path wins).
fn permutations(items: &[u32]) -> Vec<Vec<u32>> {
    let mut items = items.to_vec();
    let n = items.len();
    let mut result = vec![items.clone()];
    let mut c = vec![0usize; n];
    let mut i = 1;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                items.swap(0, i);
            } else {
                items.swap(c[i], i);
            }
            result.push(items.clone());
            c[i] += 1;
            i = 1;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    result
}

/// Canonicalizes a dataset (quads deduplicated by the caller, blank nodes numbered
/// `0..blank_count`) into sorted canonical N-Quads.
pub(crate) fn canonicalize(quads: &[Quad], blank_count: u32) -> Result<String, JsonLdError> {
    let mut blank_to_quads = vec![Vec::new(); blank_count as usize];
    for (i, quad) in quads.iter().enumerate() {
        for b in quad.blank_nodes() {
            let list: &mut Vec<usize> = &mut blank_to_quads[b as usize];
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut state = State {
        quads,
        blank_to_quads,
        canonical: vec![None; blank_count as usize],
        next_canonical: 0,
        buffer: String::new(),
    };
    let mut by_hash: BTreeMap<Hash, Vec<u32>> = BTreeMap::new();
    for b in 0..blank_count {
        if !state.blank_to_quads[b as usize].is_empty() {
            let hash = state.hash_first_degree(b);
            by_hash.entry(hash).or_default().push(b);
        }
    }
    let mut shared = Vec::new();
    for (_, blanks) in by_hash {
        if let [only] = blanks[..] {
            state.issue_canonical(only);
        } else {
            shared.push(blanks);
        }
    }
    for blanks in shared {
        let mut results = Vec::new();
        for &b in &blanks {
            if state.canonical[b as usize].is_some() {
                continue;
            }
            let mut issuer = TempIssuer::default();
            issuer.issue(b);
            results.push(state.hash_n_degree(b, issuer)?);
        }
        results.sort_by_key(|a| a.0);
        for (_, issuer) in results {
            for b in issuer.issued {
                state.issue_canonical(b);
            }
        }
    }
    let canonical = &state.canonical;
    let mut lines: Vec<String> = Vec::with_capacity(quads.len());
    for quad in quads {
        let buffer = &mut state.buffer;
        buffer.clear();
        quad.write_nquad(buffer, &|b| {
            BlankLabel::Canonical(canonical[b as usize].unwrap_or(u32::MAX))
        });
        lines.push(buffer.clone());
    }
    lines.sort_unstable();
    lines.dedup();
    Ok(lines.concat())
}
