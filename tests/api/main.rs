//! Integration tests: the store, the ingest API and the pages, against a real
//! SQLite database (a fresh file per test).
#![cfg(feature = "ssr")]

mod alerts;
mod auth;
mod backups;
mod bulk;
mod charts;
mod common;
mod config;
mod ingest;
mod integrity;
mod openapi;
mod pages;
mod partitions;
mod query;
mod read_api;
mod scale;
mod security;
mod sessions;
mod settings;
mod store;
mod streams;
