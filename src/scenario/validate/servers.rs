//! `[[server]]` and `[[server_group]]`: server names and their users, each declared once.

use std::ops::Range;

use toml::Spanned;

use super::{Builder, Result, span};
use crate::matrix::ids;
use crate::scenario::file;
use crate::scenario::{SERVERS_MAX, ServerSpec, USERS_MAX, USERS_PER_SERVER_MAX};

impl Builder<'_> {
    /// Declares a server, checking its name and that it is new.
    fn add_server(&mut self, name: &str, at: Range<usize>) -> Result<()> {
        if let Err(error) = ids::check_server_name(name) {
            let problem = format!("bad server name {name:?}: {}", error.problem);
            return Err(self.error(at, problem));
        }
        if self.servers.iter().any(|server| server.name == name) {
            return Err(self.error(at, format!("server {name} is declared twice")));
        }
        if self.servers.len() == SERVERS_MAX {
            return Err(self.error(at, format!("more than {SERVERS_MAX} servers")));
        }
        self.servers.push(ServerSpec { name: name.to_owned(), users: Vec::new(), config: None });
        Ok(())
    }

    /// Adds a user (a localpart or a full id on `server`) to the last declared server.
    fn add_user(&mut self, server: &str, user: &Spanned<String>) -> Result<()> {
        let written = user.get_ref();
        let id =
            if written.starts_with('@') { written.clone() } else { format!("@{written}:{server}") };
        let (localpart, on) = ids::parse_user_id(&id).map_err(|error| {
            self.error(span(user), format!("bad user id {written:?}: {}", error.problem))
        })?;
        if !ids::is_strict_user_localpart(localpart) {
            let problem =
                format!("bad user {written:?}: a localpart uses only a-z 0-9 . _ = - / +");
            return Err(self.error(span(user), problem));
        }
        if on != server {
            let problem = format!("user {id} does not belong to server {server}");
            return Err(self.error(span(user), problem));
        }
        if self.user_server.contains_key(&id) {
            return Err(self.error(span(user), format!("user {id} is declared twice")));
        }
        if self.user_server.len() == USERS_MAX {
            return Err(self.error(span(user), format!("more than {USERS_MAX} users")));
        }
        let spec = self.servers.last_mut().unwrap();
        assert_eq!(spec.name, server);
        if spec.users.len() == USERS_PER_SERVER_MAX {
            let problem = format!("more than {USERS_PER_SERVER_MAX} users on server {server}");
            return Err(self.error(span(user), problem));
        }
        spec.users.push(id.clone());
        self.user_server.insert(id, server.to_owned());
        Ok(())
    }

    pub(super) fn server(&mut self, table: &Spanned<file::ServerTable>) -> Result<()> {
        let table = table.get_ref();
        let name = table.name.get_ref();
        self.add_server(name, span(&table.name))?;
        for user in &table.users {
            self.add_user(name, user)?;
        }
        if let Some(config) = &table.config {
            let config = self.server_config(config.get_ref())?;
            self.servers.last_mut().expect("just added").config = Some(config);
        }
        Ok(())
    }

    pub(super) fn server_group(&mut self, group: &Spanned<file::ServerGroupTable>) -> Result<()> {
        let group = group.get_ref();
        let count = *group.count.get_ref();
        if count == 0 || count > SERVERS_MAX as u64 {
            let problem = format!("count must be 1 to {SERVERS_MAX}, not {count}");
            return Err(self.error(span(&group.count), problem));
        }
        for number in group.first..group.first.saturating_add(count) {
            let name = format!("{}{number}", group.prefix.get_ref());
            self.add_server(&name, span(&group.prefix))?;
            for user in &group.users {
                if user.get_ref().starts_with('@') {
                    let problem = "a server group's users are localparts, such as \"alice\"";
                    return Err(self.error(span(user), problem));
                }
                self.add_user(&name, user)?;
            }
            if let Some(config) = &group.config {
                let config = self.server_config(config.get_ref())?;
                self.servers.last_mut().expect("just added").config = Some(config);
            }
        }
        Ok(())
    }
}
