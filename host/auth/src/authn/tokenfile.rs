//! Static bearer tokens from a CSV file (Kubernetes' `--token-auth-file`): one line per token,
//! `token,user,uid,"group1,group2"` (groups optional). Read once at start.

use std::collections::HashMap;
use std::path::Path;

use super::AuthnError;
use crate::UserInfo;

/// Tokens and whom they authenticate.
#[derive(Debug, Default, Clone)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, AuthnError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthnError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, why)| AuthnError::TokenFile {
            path: path.into(),
            line,
            why,
        })
    }

    /// Parses the CSV text; errors carry the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let mut users = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                (line, e.to_string())
            })?;
            let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
            if record.len() < 3 {
                return Err((line, "want at least 3 columns: token,user,uid".into()));
            }
            let (token, name) = (record[0].trim(), record[1].trim());
            if token.is_empty() || name.is_empty() {
                return Err((line, "token and user must not be empty".into()));
            }
            let groups: Vec<&str> = record
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            users.insert(token.to_string(), UserInfo::new(name, &groups));
        }
        Ok(Self { users })
    }

    /// Adds a token (the admin token the server writes itself).
    pub fn insert(&mut self, token: &str, user: UserInfo) {
        self.users.insert(token.into(), user);
    }

    /// Who a token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_csv_format() {
        let f = TokenFile::parse("# comment\nt1,alice,1001,\"dev,ops\"\nt2,bob,1002\n").unwrap();
        let alice = f.authenticate("t1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(
            f.authenticate("t2").unwrap().groups,
            ["system:authenticated"]
        );
        assert!(f.authenticate("t3").is_none());
        assert_eq!(TokenFile::parse("a,b\n").unwrap_err().0, 1);
        assert!(TokenFile::parse(",b,c\n").is_err());
    }
}
