//! Makes cargo unpack protoc-bin-vendored before etcd-client's build script runs protoc
//! (see tools/protoc); the binary itself needs nothing generated.

fn main() {}
