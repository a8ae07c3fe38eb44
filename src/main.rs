//! The `mxsim` binary: everything lives in the library; see `mxsim::cli`.

fn main() -> std::process::ExitCode {
    mxsim::cli::main()
}
