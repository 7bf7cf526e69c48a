//! The sandbox against a purpose-built hostile component: a guest that grows
//! its memory without end and one that never returns are stopped by the same
//! store limits a keystore runs under, as `Internal` errors, and the process
//! (and its keystores) carry on.

mod common;

use std::time::{Duration, Instant};

use common::Scratch;
use keystate::{Cipher, ErrorKind, KeyState, Limits, raw};
use serde_json::{Value, json};

const WIT: &str = "package keystate:hostile;

world hostile {
    export spin: func();
    export grow: func();
}
";

/// `spin` loops forever; `grow` grows its memory a page at a time until that
/// fails, then traps with `unreachable` (so only a limiter that traps on the
/// failed grow itself yields a memory error).
const WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "spin")
    (loop $forever (br $forever)))
  (func (export "grow")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))
"#;

fn hostile_component() -> Vec<u8> {
    let mut core = wat::parse_str(WAT).expect("parse the WAT");
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("hostile.wit", WIT).expect("parse the WIT");
    let world = resolve.select_world(&[package], Some("hostile")).expect("the hostile world");
    wit_component::embed_component_metadata(&mut core, &resolve, world, wit_component::StringEncoding::UTF8, false)
        .expect("embed the WIT");
    wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|e| e.validate(true).encode())
        .expect("encode the component")
}

fn run(limits: Limits, export: &str) -> keystate::Result<Value> {
    raw::run_untrusted(&hostile_component(), limits, export, &json!({}))
}

fn assert_memory_cap_stops_growth() {
    let limits = Limits { memory_bytes: 4 << 20, ..Limits::default() };
    let e = run(limits, "grow").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(e.message().contains("ran past its memory limit"), "{e}");
    assert!(!e.message().contains("unreachable"), "the grow failed without trapping: {e}");
}

fn assert_deadline_stops_a_loop() {
    let limits = Limits { call_deadline: Duration::from_millis(50), ..Limits::default() };
    let started = Instant::now();
    let e = run(limits, "spin").unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(e.message().contains("ran past its time limit"), "{e}");
    assert!(took < Duration::from_secs(5), "the deadline took {took:?}");
}

#[test]
fn the_memory_cap_stops_a_guest_that_grows_past_it() {
    assert_memory_cap_stops_growth();
}

#[test]
fn the_epoch_deadline_stops_a_guest_stuck_in_a_loop() {
    assert_deadline_stops_a_loop();
}

#[test]
fn unknown_exports_and_bad_arguments_are_errors() {
    let e = run(Limits::default(), "nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = raw::run_untrusted(&hostile_component(), Limits::default(), "spin", &json!({"x": 1})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = raw::run_untrusted(b"not wasm", Limits::default(), "spin", &json!({})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn the_host_is_still_usable_after_hostile_guests_fail() {
    assert_memory_cap_stops_growth();
    assert_deadline_stops_a_loop();
    // Again: nothing was left behind in the engine or the epoch ticker.
    assert_deadline_stops_a_loop();
    assert_memory_cap_stops_growth();

    let s = Scratch::new();
    let (path, ks) = s.keystore();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k", KeyState::Active, None, "").unwrap();
    let sealed = ks.encrypt("g", b"still here", b"aad").unwrap();
    assert_eq!(ks.decrypt(&sealed, b"aad").unwrap(), b"still here");
    drop(ks);
    let ks = keystate::Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&sealed, b"aad").unwrap(), b"still here");
}
