//! Compiles the protocol files of the KurrentDB test double (tests/kurrent_double/protos) into
//! OUT_DIR, with `protox` instead of protoc. Only the tests include the generated code; the
//! library and the binary never do, so nothing of it ships. Cheap: it runs again only when those
//! files change.

fn main() {
    let dir = "tests/kurrent_double/protos";
    println!("cargo:rerun-if-changed={dir}");
    println!("cargo:rerun-if-changed=build.rs");
    let files = [
        format!("{dir}/shared.proto"),
        format!("{dir}/serverfeatures.proto"),
        format!("{dir}/streams.proto"),
        format!("{dir}/gossip.proto"),
    ];
    let descriptors = match protox::compile(&files, [dir]) {
        Ok(d) => d,
        Err(e) => {
            // A build script reports failure by exiting non-zero; the message says which file.
            eprintln!("cannot compile the test double's protocol files: {e:?}");
            std::process::exit(1);
        }
    };
    if let Err(e) = tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(descriptors)
    {
        eprintln!("cannot generate the test double's gRPC code: {e}");
        std::process::exit(1);
    }
}
