//! Pieces of the reconcile benchmark: the operator process and the cluster objects.

pub mod cluster;
pub mod operator;
