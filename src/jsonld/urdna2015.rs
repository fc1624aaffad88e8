//! RDF Dataset Canonicalization (RDFC-1.0, formerly URDNA2015) over the quads from expansion.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::JsonLdError;
use super::rdf::{BlankLabel, Node, Object, Quad};

/// Bounds on the work of canonicalizing one dataset. RDFC-1.0 (§4.4, "Security Considerations")
/// asks implementations to bound Hash N-Degree Quads, whose cost grows factorially with groups of
/// blank nodes that first-degree hashing cannot tell apart ("poison graphs": a 2.4 KB credential
/// whose blank nodes form a 9-clique costs about 50 CPU-seconds unbounded).
///
/// The defaults are far above what any credential, fixture or test vector we have needs (the most
/// any of them uses is written in BENCHMARKS.md) and low enough that a poison graph is refused in
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalizationLimits {
    /// Calls of Hash N-Degree Quads (RDFC-1.0 §4.8), recursive calls included.
    pub max_calls: u64,
    /// Permutations of indistinguishable blank nodes examined (§4.8.3 step 5.4), all calls together.
    pub max_permutations: u64,
    /// Recursion depth of Hash N-Degree Quads.
    pub max_depth: u32,
}

impl CanonicalizationLimits {
    /// Default of [`CanonicalizationLimits::max_calls`].
    pub const DEFAULT_MAX_CALLS: u64 = 4_000;
    /// Default of [`CanonicalizationLimits::max_permutations`].
    pub const DEFAULT_MAX_PERMUTATIONS: u64 = 4_000;
    /// Default of [`CanonicalizationLimits::max_depth`].
    pub const DEFAULT_MAX_DEPTH: u32 = 32;
}

impl Default for CanonicalizationLimits {
    fn default() -> Self {
        Self {
            max_calls: Self::DEFAULT_MAX_CALLS,
            max_permutations: Self::DEFAULT_MAX_PERMUTATIONS,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// What one canonicalization may spend, and the flag that stops it when its request is gone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Budget<'c> {
    pub(crate) limits: CanonicalizationLimits,
    pub(crate) cancel: Option<&'c AtomicBool>,
}

/// The work one canonicalization did (for measuring how far real documents are from the limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CanonicalizationWork {
    /// Calls of Hash N-Degree Quads.
    pub calls: u64,
    /// Permutations examined.
    pub permutations: u64,
    /// Deepest recursion reached.
    pub depth: u32,
}

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

struct State<'q, 'c> {
    quads: &'q [Quad],
    budget: Budget<'c>,
    work: CanonicalizationWork,
    /// Quads mentioning each blank node, by blank node number.
    blank_to_quads: Vec<Vec<usize>>,
    /// Canonical label number of each blank node, once issued.
    canonical: Vec<Option<u32>>,
    next_canonical: u32,
    buffer: String,
}

impl State<'_, '_> {
    fn check_cancelled(&self) -> Result<(), JsonLdError> {
        match self.budget.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(JsonLdError::Cancelled),
            _ => Ok(()),
        }
    }

    /// Counts one call of Hash N-Degree Quads at `depth`, refusing it past the limits.
    fn enter_n_degree(&mut self, depth: u32) -> Result<(), JsonLdError> {
        self.check_cancelled()?;
        let limits = self.budget.limits;
        self.work.calls += 1;
        self.work.depth = self.work.depth.max(depth);
        if self.work.calls > limits.max_calls {
            return Err(JsonLdError::LimitExceeded {
                what: "Hash N-Degree Quads calls",
                limit: "rdfc_max_calls",
                max: limits.max_calls,
            });
        }
        if depth > limits.max_depth {
            return Err(JsonLdError::LimitExceeded {
                what: "Hash N-Degree Quads recursion depth",
                limit: "rdfc_max_depth",
                max: u64::from(limits.max_depth),
            });
        }
        Ok(())
    }

    /// Counts one permutation examined, refusing it past the limit.
    fn count_permutation(&mut self) -> Result<(), JsonLdError> {
        self.check_cancelled()?;
        self.work.permutations += 1;
        let max = self.budget.limits.max_permutations;
        if self.work.permutations > max {
            return Err(JsonLdError::LimitExceeded {
                what: "blank node permutations",
                limit: "rdfc_max_permutations",
                max,
            });
        }
        Ok(())
    }

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
        depth: u32,
    ) -> Result<(Hash, TempIssuer), JsonLdError> {
        self.enter_n_degree(depth)?;
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
            let mut chosen: Option<(String, TempIssuer)> = None;
            let mut permutations = Permutations::new(blank_list);
            while let Some(permutation) = permutations.next_permutation() {
                self.count_permutation()?;
                let mut issuer_copy = issuer.clone();
                let mut path = String::new();
                let mut recursion_list = Vec::new();
                let mut skip = false;
                for &related in permutation {
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
                        self.hash_n_degree(related, issuer_copy.clone(), depth + 1)?;
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

/// All orderings of a list, one at a time (Heap's algorithm, iteratively; the order of generation
/// does not matter because the smallest path wins). Lazy, so a large group costs only the
/// permutations the budget lets through, never n! in memory.
struct Permutations {
    items: Vec<u32>,
    c: Vec<usize>,
    i: usize,
    started: bool,
}

impl Permutations {
    fn new(items: Vec<u32>) -> Self {
        Self {
            c: vec![0; items.len()],
            items,
            i: 1,
            started: false,
        }
    }

    fn next_permutation(&mut self) -> Option<&[u32]> {
        if !self.started {
            self.started = true;
            return Some(&self.items);
        }
        let n = self.items.len();
        while self.i < n {
            let i = self.i;
            if self.c[i] < i {
                if i.is_multiple_of(2) {
                    self.items.swap(0, i);
                } else {
                    self.items.swap(self.c[i], i);
                }
                self.c[i] += 1;
                self.i = 1;
                return Some(&self.items);
            }
            self.c[i] = 0;
            self.i += 1;
        }
        None
    }
}

/// Canonicalizes a dataset (quads deduplicated by the caller, blank nodes numbered
/// `0..blank_count`) into sorted canonical N-Quads, within `budget`.
pub(crate) fn canonicalize(
    quads: &[Quad],
    blank_count: u32,
    budget: Budget<'_>,
) -> Result<(String, CanonicalizationWork), JsonLdError> {
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
        budget,
        work: CanonicalizationWork::default(),
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
            results.push(state.hash_n_degree(b, issuer, 1)?);
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
    Ok((lines.concat(), state.work))
}
