//! The appliance: what `paf run` serves from a [`crate::config::Config`] — listeners with routes
//! (static, files, proxy, redirect, health, metrics).

pub mod files;
