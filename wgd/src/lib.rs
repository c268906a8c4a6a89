//! wgd: a WireGuard tunnel manager for routers.
//!
//! Data flows one way through the crate:
//! `config` (files to typed values) → `plan` (desired against `actual`
//! state: a list of actions) → `apply` (actions through the `system`
//! adapters: WireGuard devices and rtnetlink) → `status`/`daemon` (state,
//! events, API, metrics). Config, plan and keys are pure; only `system`,
//! `apply` and `daemon` touch the host. `mesh` sits before `config`: it
//! writes the config files of every site of a mesh from one description;
//! `check` runs `config` and the daemon's start-up checks alone.

pub mod actual;
pub mod apply;
pub mod bfd_cli;
pub mod check;
pub mod config;
pub mod daemon;
pub mod keys;
pub mod mesh;
pub mod plan;
pub mod reconcile;
pub mod routes_cli;
pub mod rpki_cli;
pub mod state;
pub mod status;
pub mod system;
