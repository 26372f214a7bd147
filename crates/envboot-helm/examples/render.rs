//! `cargo run -p envboot-helm --example render -- CHART [-f values.yaml]... [--set k=v]...`:
//! prints what `helm template rel CHART --namespace ns --kube-version 1.30.0` prints.

use std::process::ExitCode;

/// As the envboot binary allocates.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: render CHART [-f FILE]... [--set K=V]... [--set-string K=V]...");
        return ExitCode::from(2);
    };
    let mut opts = envboot_helm::Options {
        release_name: "rel".into(),
        namespace: "ns".into(),
        kube_version: "1.30.0".into(),
        ..Default::default()
    };
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "-f" => match std::fs::read_to_string(&v) {
                Ok(t) => opts.values_files.push((v, t)),
                Err(e) => {
                    eprintln!("Error: {v}: {e}");
                    return ExitCode::from(1);
                }
            },
            "--set" => opts.set.push(v),
            "--set-string" => opts.set_string.push(v),
            _ => {
                eprintln!("unknown flag {a}");
                return ExitCode::from(2);
            }
        }
    }
    let chart = match envboot_helm::Chart::from_dir(std::path::Path::new(&dir)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    match envboot_helm::template(&chart, &opts) {
        Ok(r) => {
            print!("{}", envboot_helm::to_helm_output(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
