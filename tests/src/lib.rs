//! System tests live in system/ (one test binary: `cargo nextest run -p rapport-system-tests`).
