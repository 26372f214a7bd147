//! `envboot template`: the chart renderer on its own, with `helm template`'s flags and output.

use clap::Args;
use envboot::engine::{self, exit};
use envboot::helm;

/// Render one Helm chart exactly as `helm template` does (same flags, same output).
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// `[RELEASE] CHART`: the release name (default `release-name`) and the chart folder.
    #[arg(num_args = 1..=2, required = true, value_name = "[RELEASE] CHART")]
    args: Vec<String>,
    /// A values file (repeatable; later ones win).
    #[arg(short = 'f', long = "values")]
    values: Vec<std::path::PathBuf>,
    /// Set values on the command line (`a.b=c,d=e`; repeatable).
    #[arg(long)]
    set: Vec<String>,
    /// Set string values on the command line (repeatable).
    #[arg(long)]
    set_string: Vec<String>,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The Kubernetes version `.Capabilities.KubeVersion` reports.
    #[arg(long, default_value = "1.30.0")]
    kube_version: String,
    /// An API version `.Capabilities.APIVersions` has (repeatable).
    #[arg(short = 'a', long)]
    api_versions: Vec<String>,
    /// Print only the manifests rendered from this template (e.g. templates/service.yaml; repeatable).
    #[arg(short = 's', long)]
    show_only: Vec<String>,
}

pub fn run(args: TemplateArgs) -> engine::Result<u8> {
    template(args).map_err(engine::Error::Chart)
}

fn template(args: TemplateArgs) -> Result<u8, String> {
    let (release, chart) = match args.args.as_slice() {
        [chart] => ("release-name".to_string(), chart.clone()),
        [release, chart] => (release.clone(), chart.clone()),
        _ => return Err("expected [RELEASE] CHART".into()),
    };
    let chart = helm::Chart::from_dir(std::path::Path::new(&chart)).map_err(|e| e.to_string())?;
    let values_files = args
        .values
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .map_err(|e| format!("cannot read values file {}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = helm::Options {
        release_name: release,
        namespace: args.namespace,
        kube_version: args.kube_version,
        api_versions: args.api_versions,
        values_files,
        set: args.set,
        set_string: args.set_string,
        is_upgrade: false,
        max_steps: None,
        ..Default::default()
    };
    let mut rendered = helm::template(&chart, &options).map_err(|e| e.to_string())?;
    if !args.show_only.is_empty() {
        rendered.retain(|r| {
            args.show_only
                .iter()
                .any(|s| r.source.ends_with(s.as_str()))
        });
        if rendered.is_empty() {
            return Err(format!(
                "could not find template {} in chart",
                args.show_only.join(", ")
            ));
        }
    }
    print!("{}", helm::to_helm_output(&rendered));
    Ok(exit::OK)
}
