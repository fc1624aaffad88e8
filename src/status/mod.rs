//! Credential status: W3C Bitstring Status Lists (revocation, suspension) and the 1EdTech revocation
//! list. The allocator hands out indexes, `changes` revokes and suspends, `lists` publishes.

pub mod allocator;
pub mod bitstring;
pub mod changes;
pub mod lists;
