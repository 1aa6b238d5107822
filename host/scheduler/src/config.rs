//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): profiles by `schedulerName`,
//! each starting from the default plugins, with extension points' `disabled` (a name or `*`)
//! and `enabled` lists (`multiPoint`, `filter`, `score`; score weights), and
//! `percentageOfNodesToScore` globally or per profile. Plugin args (`pluginConfig`) other than
//! the defaults are not supported yet and are reported as an error.

use serde::Deserialize;

use crate::error::Error;
use crate::framework::Profile;
use crate::plugins::{
    filter_plugin, score_plugin, DEFAULT_FILTERS, DEFAULT_SCHEDULER_NAME, DEFAULT_SCORES,
};

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    /// `kubescheduler.config.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `KubeSchedulerConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// Global default for the profiles (0 = adaptive).
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// The profiles (none = the default profile).
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// One profile.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfig {
    /// The `schedulerName` pods use (default `default-scheduler`).
    #[serde(default)]
    pub scheduler_name: Option<String>,
    /// Overrides the global percentage.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Plugin changes per extension point.
    #[serde(default)]
    pub plugins: Plugins,
    /// Plugin arguments.
    #[serde(default)]
    pub plugin_config: Vec<serde_json::Value>,
}

/// Extension points.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    /// Applies to every extension point a plugin implements.
    #[serde(default)]
    pub multi_point: PluginSet,
    /// Filter.
    #[serde(default)]
    pub filter: PluginSet,
    /// Score.
    #[serde(default)]
    pub score: PluginSet,
}

/// Enabled and disabled plugins of one extension point.
#[derive(Debug, Default, Deserialize)]
pub struct PluginSet {
    /// Added after the defaults (or replacing a default's weight).
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Removed from the defaults; `*` removes them all.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin by name, with a score weight.
#[derive(Debug, Default, Deserialize)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// Score weight (0 = the plugin's default, or 1).
    #[serde(default)]
    pub weight: i64,
}

fn disabled(sets: &[&PluginSet], name: &str) -> bool {
    sets.iter()
        .flat_map(|s| &s.disabled)
        .any(|d| d.name == "*" || d.name == name)
}

fn build(p: &ProfileConfig, global_pct: u32) -> Result<Profile, Error> {
    let name = p
        .scheduler_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.into());
    if !p.plugin_config.is_empty() {
        return Err(Error::Config(format!(
            "profile {name}: pluginConfig is not supported yet"
        )));
    }
    let pl = &p.plugins;
    let mut filters: Vec<String> = DEFAULT_FILTERS
        .iter()
        .filter(|n| !disabled(&[&pl.multi_point, &pl.filter], n))
        .map(|n| n.to_string())
        .collect();
    let mut scores: Vec<(String, i64)> = DEFAULT_SCORES
        .iter()
        .filter(|(n, _)| !disabled(&[&pl.multi_point, &pl.score], n))
        .map(|(n, w)| (n.to_string(), *w))
        .collect();
    for e in &pl.multi_point.enabled {
        let known = filter_plugin(&e.name).is_some() || score_plugin(&e.name).is_some();
        if !known {
            return Err(Error::Config(format!(
                "profile {name}: unknown plugin {:?}",
                e.name
            )));
        }
        if filter_plugin(&e.name).is_some() && !filters.contains(&e.name) {
            filters.push(e.name.clone());
        }
        if score_plugin(&e.name).is_some() {
            set_score(&mut scores, &e.name, e.weight);
        }
    }
    for e in &pl.filter.enabled {
        if filter_plugin(&e.name).is_none() {
            return Err(Error::Config(format!(
                "profile {name}: {:?} is not a filter plugin",
                e.name
            )));
        }
        if !filters.contains(&e.name) {
            filters.push(e.name.clone());
        }
    }
    for e in &pl.score.enabled {
        if score_plugin(&e.name).is_none() {
            return Err(Error::Config(format!(
                "profile {name}: {:?} is not a score plugin",
                e.name
            )));
        }
        set_score(&mut scores, &e.name, e.weight);
    }
    Ok(Profile {
        scheduler_name: name,
        filters: filters.iter().filter_map(|n| filter_plugin(n)).collect(),
        scores: scores
            .iter()
            .filter_map(|(n, w)| score_plugin(n).map(|p| (p, *w)))
            .collect(),
        percentage_of_nodes_to_score: p.percentage_of_nodes_to_score.unwrap_or(global_pct),
    })
}

fn set_score(scores: &mut Vec<(String, i64)>, name: &str, weight: i64) {
    match scores.iter_mut().find(|(n, _)| n == name) {
        Some(entry) if weight > 0 => entry.1 = weight,
        Some(_) => {}
        None => scores.push((name.to_string(), weight.max(1))),
    }
}

impl KubeSchedulerConfiguration {
    /// The profiles this configuration describes.
    pub fn profiles(&self) -> Result<Vec<Profile>, Error> {
        if !self.kind.is_empty() && self.kind != "KubeSchedulerConfiguration" {
            return Err(Error::Config(format!(
                "kind {:?} is not KubeSchedulerConfiguration",
                self.kind
            )));
        }
        let global = self.percentage_of_nodes_to_score.unwrap_or(0);
        if self.profiles.is_empty() {
            return Ok(vec![crate::default_profile(DEFAULT_SCHEDULER_NAME, global)]);
        }
        let profiles: Vec<Profile> = self
            .profiles
            .iter()
            .map(|p| build(p, global))
            .collect::<Result<_, _>>()?;
        let mut names: Vec<&str> = profiles.iter().map(|p| p.scheduler_name.as_str()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Config("duplicate schedulerName in profiles".into()));
        }
        Ok(profiles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> KubeSchedulerConfiguration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn profiles_change_plugins_and_weights() {
        let cfg = parse(serde_json::json!({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "percentageOfNodesToScore": 30,
            "profiles": [
                {"schedulerName": "default-scheduler"},
                {"schedulerName": "no-spread",
                 "percentageOfNodesToScore": 100,
                 "plugins": {
                    "multiPoint": {"disabled": [{"name": "PodTopologySpread"}]},
                    "score": {"disabled": [{"name": "*"}], "enabled": [{"name": "ImageLocality", "weight": 7}]}}}
            ]
        }));
        let profiles = cfg.profiles().unwrap();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0].percentage_of_nodes_to_score, 30);
        assert_eq!(profiles[0].filters.len(), 8);
        let p = &profiles[1];
        assert_eq!(p.percentage_of_nodes_to_score, 100);
        assert!(p.filters.iter().all(|f| f.name() != "PodTopologySpread"));
        let scores: Vec<(&str, i64)> = p.scores.iter().map(|(s, w)| (s.name(), *w)).collect();
        assert_eq!(scores, [("ImageLocality", 7)]);
    }

    #[test]
    fn unknown_plugins_and_duplicate_names_are_errors() {
        let bad = parse(
            serde_json::json!({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]}),
        );
        assert!(bad.profiles().is_err());
        let dup =
            parse(serde_json::json!({"profiles": [{}, {"schedulerName": "default-scheduler"}]}));
        assert!(dup.profiles().is_err());
        assert_eq!(parse(serde_json::json!({})).profiles().unwrap().len(), 1);
    }
}
