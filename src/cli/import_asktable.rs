//! `tablegate import-asktable`: converts an AskTable export into a policy file for review.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use tablegate::asktable::{Datasource, Export, convert};
use tablegate::config::Config;
use tablegate::policy::PolicySet;

pub struct Options<'a> {
    pub config: &'a Path,
    pub export: &'a Path,
    pub out: &'a Path,
    /// `ASKTABLE_ID=NAME` pairs given on the command line.
    pub datasources: &'a [String],
    pub force: bool,
}

pub async fn run(options: Options<'_>) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(options.export)
        .map_err(|e| format!("cannot read {}: {e}", options.export.display()))?;
    let export: Export = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not an AskTable export (an object with `policies`, `roles` and optionally \
             `datasources`): {e}",
            options.export.display()
        )
    })?;
    let config = Config::load(options.config)?;
    let ids = asktable_ids(&export, &config, options.datasources)?;
    let target = options.out.join("asktable.toml");
    if target.exists() && !options.force {
        return Err(format!(
            "{} exists; pass --force to replace it",
            target.display()
        ));
    }
    let mut catalogs = Vec::new();
    for (name, ids) in ids {
        let client = super::connect(&config, &name).await?;
        catalogs.push((name.clone(), ids, super::catalog(&client, &name).await?));
    }
    let datasources: Vec<Datasource> = catalogs
        .iter()
        .map(|(name, ids, catalog)| Datasource {
            name: name.clone(),
            asktable_ids: ids.clone(),
            catalog,
        })
        .collect();
    let policies = config.path(&config.policies);
    let existing = if policies.is_dir() {
        PolicySet::sources_in(&policies)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(file, _)| !same_file(Path::new(&**file), &target))
            .collect()
    } else {
        Vec::new()
    };
    let import = convert(
        &export,
        &datasources,
        &options.export.display().to_string(),
        &existing,
    )?;
    std::fs::create_dir_all(options.out)
        .and_then(|()| std::fs::write(&target, &import.toml))
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    for note in &import.notes {
        let kind = if note.lost { "NOT IMPORTED" } else { "review" };
        eprintln!("{kind}: {}", note.text);
    }
    println!(
        "wrote {} ({} roles); review it, copy it into the policies folder and run `tablegate check`",
        target.display(),
        export.roles.len()
    );
    Ok(if import.expressed_everything() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "some of the AskTable policies could not be expressed (NOT IMPORTED above); what \
             was written grants less, never more"
        );
        ExitCode::from(1)
    })
}

/// For each tablegate datasource, the AskTable ids that stand for it: given on the command
/// line, or an AskTable datasource whose name (or id) is a tablegate datasource's name.
fn asktable_ids(
    export: &Export,
    config: &Config,
    given: &[String],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add =
        |name: &str, id: &str| ids.entry(name.to_owned()).or_default().push(id.to_owned());
    for pair in given {
        let Some((id, name)) = pair.split_once('=') else {
            return Err(format!(
                "--datasource `{pair}` should read ASKTABLE_ID=NAME"
            ));
        };
        if !config.datasource.contains_key(name) {
            return Err(format!(
                "--datasource {pair}: `{name}` has no [datasource.{name}] section in the configuration"
            ));
        }
        add(name, id);
    }
    let named: Vec<(&str, &str)> = export
        .datasources
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_deref().unwrap_or(d.id.as_str())))
        .chain(
            export
                .policies
                .iter()
                .flat_map(|p| p.dataset_config.datasource_ids.ids())
                .map(|id| (id.as_str(), id.as_str())),
        )
        .collect();
    for (id, name) in named {
        let given_already = given
            .iter()
            .any(|g| g.split_once('=').map(|(i, _)| i) == Some(id));
        if !given_already && config.datasource.contains_key(name) {
            add(name, id);
        }
    }
    for list in ids.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(ids)
}

/// Whether two paths name one file (a re-import with --force into the policies folder).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
