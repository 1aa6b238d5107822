//! The ordered chain of plugins and `--enable-admission-plugins` / `--disable-admission-plugins`.

use std::sync::{Arc, RwLock};

use crate::{plugins, Api, Attributes, Denied, Plugin};

/// Where in the chain a dynamically registered plugin (webhook, Wasm) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// After the mutating built-ins.
    Mutating,
    /// After the validating built-ins, before ResourceQuota.
    Validating,
}

/// A chain configuration naming a plugin that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown admission plugin {name:?}; known: {}", known.join(", "))]
pub struct UnknownPlugin {
    /// The name given.
    pub name: String,
    /// Every plugin name there is.
    pub known: Vec<&'static str>,
}

/// Which built-in plugins are on.
#[derive(Debug, Clone, Default)]
pub struct ChainConfig {
    /// Plugins to enable in addition to the defaults.
    pub enable: Vec<String>,
    /// Plugins to disable.
    pub disable: Vec<String>,
}

/// The admission chain.
pub struct Chain {
    builtins: Vec<Arc<dyn Plugin>>,
    quota: Option<Arc<dyn Plugin>>,
    dynamic: RwLock<Vec<(Stage, Arc<dyn Plugin>)>>,
}

impl Chain {
    /// Builds the chain: Kubernetes' default plugins that exist here, plus `enable`, minus
    /// `disable`; unknown names are an error.
    pub fn new(config: &ChainConfig) -> Result<Self, UnknownPlugin> {
        for name in config.enable.iter().chain(config.disable.iter()) {
            if !plugins::ALL.contains(&name.as_str()) {
                return Err(UnknownPlugin {
                    name: name.clone(),
                    known: plugins::ALL.to_vec(),
                });
            }
        }
        let on = |name: &str| {
            (plugins::DEFAULT.contains(&name) || config.enable.iter().any(|e| e == name))
                && !config.disable.iter().any(|d| d == name)
        };
        let mut builtins = Vec::new();
        let mut quota = None;
        for name in plugins::ALL {
            if !on(name) {
                continue;
            }
            let Some(p) = plugins::build(name) else {
                continue;
            };
            if *name == "ResourceQuota" {
                quota = Some(p);
            } else {
                builtins.push(p);
            }
        }
        Ok(Self {
            builtins,
            quota,
            dynamic: RwLock::new(Vec::new()),
        })
    }

    /// Names of the enabled built-in plugins, in order.
    pub fn enabled(&self) -> Vec<String> {
        self.builtins
            .iter()
            .chain(self.quota.iter())
            .map(|p| p.name().to_string())
            .collect()
    }

    /// Replaces the dynamic plugins (webhooks, Wasm) of a stage; they run in the given order.
    pub fn set_dynamic(&self, stage: Stage, list: Vec<Arc<dyn Plugin>>) {
        let mut d = self.dynamic.write().unwrap_or_else(|e| e.into_inner());
        d.retain(|(s, _)| *s != stage);
        d.extend(list.into_iter().map(|p| (stage, p)));
    }

    fn dynamic(&self, stage: Stage) -> Vec<Arc<dyn Plugin>> {
        let d = self.dynamic.read().unwrap_or_else(|e| e.into_inner());
        d.iter()
            .filter(|(s, _)| *s == stage)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The mutating phase: built-ins, then dynamic mutating plugins.
    pub async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        for p in self
            .builtins
            .iter()
            .cloned()
            .chain(self.dynamic(Stage::Mutating))
        {
            p.admit(a, api).await?;
            // The plugin may have changed the object: later plugins encode it afresh.
            a.encoded = Default::default();
        }
        Ok(())
    }

    /// The validating phase: built-ins, dynamic validating plugins, then ResourceQuota.
    pub async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        for p in self
            .builtins
            .iter()
            .cloned()
            .chain(self.dynamic(Stage::Validating))
            .chain(self.quota.iter().cloned())
        {
            p.validate(a, api).await?;
        }
        Ok(())
    }
}
