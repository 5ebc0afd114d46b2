//! Integration tests of the signing server, in one binary (one link of the heavy aws-sdk-s3).
//!
//! - `fake_routes`: every route through `app(state)` over the in-memory fake store, no socket.
//! - `bad_input`: each kind of bad request gets a 4xx JSON error and reaches no store.
//! - `ceph`: store-enforced limits on Ceph radosgw, when S3_DIRECT_TEST_CEPH_* are set.
//! - `checksums`: a CRC-32-checksummed upload completing on Garage and Ceph (when their variables
//!   are set), and what `--checksum auto` chooses there.
//! - `corpus`: 300+ malformed requests over a socket against the embedded store.
//! - `embedded_store`: the real aws-sdk-s3 against the embedded s3s-fs store on a random port,
//!   with parts PUT over HTTP to the presigned URLs as a browser would.
//! - `events`: completion events (`--notify-url`) to a scripted application: retried until it
//!   answers 2xx, delivered by a restarted binary after a SIGKILL, by two replicas, and the
//!   configurations refused at start; the pending events' records on Garage and Ceph.
//! - `binary`: the `s3-direct` process: stdout lines, environment configuration, SIGTERM.
//! - `fuzz`: bounded property tests over request parsing and key naming.
//! - `integrity`: `--checksum auto`, the default: the probe and the choice over the fake store
//!   (verifies, ignores, down) and the embedded store; Uppy's checksum-less uploads still work.
//! - `ops`: `s3-direct uploads list|purge`, `bucket setup` and `doctor` on Garage / Ceph (when
//!   S3_DIRECT_TEST_GARAGE_* / S3_DIRECT_TEST_CEPH_* are set) and on the embedded store, and the
//!   sweeper's start-up line.
//! - `observability`: `/metrics`, `/readyz` and `x-request-id` (responses and log lines).
//! - `post_forms`: small files as POST policy forms (Uppy's way) on the embedded store, Garage and
//!   Ceph: what the store takes and what it refuses.
//! - `policy`: authentication, upload ownership, limits, rate limit and CORS decisions.
//! - `scripted_s3`: `S3Store` against a scripted S3 endpoint: ListParts paging and S3 error codes.

mod bad_input;
mod binary;
mod ceph;
mod checksums;
mod common;
mod corpus;
mod embedded_store;
mod events;
mod fake_routes;
mod fuzz;
mod integrity;
mod observability;
mod ops;
mod policy;
mod post_forms;
mod scripted_s3;
