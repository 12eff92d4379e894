//! Putting loaded databases in place without ever leaving a target worse.
//!
//! ```text
//! load:     every database of the point goes into a shadow database of its
//!           own (`<target>_lbnew_<tag>`): tables, rows (counts checked
//!           against the snapshot), views, routines, triggers, events;
//!           nothing of the target is touched
//! publish:  read what each shadow and each target holds now (the target's:
//!           kept to put back)
//!           drop the shadow's views, routines, triggers and events, and,
//!           replacing (--force), the target's (a table with triggers cannot
//!           change database; views, routines and events cannot either)
//!           one atomic RENAME TABLE: target.* → `<target>_lbold_<tag>`.*,
//!           shadow.* → target.*   (all databases of the restore at once)
//!           the shadow's charset, views, routines, triggers, events
//!           the caller's step (a point-in-time replay, by the targets' names:
//!           its DDL may name them)
//! success:  drop the retired and the (now empty) shadow databases
//! failure:  drop what was made in the targets, move every table they hold
//!           now (also those a replay made) to the shadows and the retired
//!           ones back, recreate the
//!           objects read before, drop the shadows: every target exactly as
//!           it was. If even that fails, the error names the database that
//!           holds the old tables, which is then kept.
//! ```
//! A process killed between the first DROP and the RENAME leaves the target's
//! tables as they were but without its views, routines, triggers and events;
//! the shadow and retired databases stay for an operator to remove.
//!
//! Test pause point (`lifeboat_vault::testhook`): `mysql-swapped`, after the
//! RENAME TABLE, before the objects are made in the targets.

use crate::error::{MysqlError, Result};
use crate::schema::{DatabaseInfo, Object, read_database};
use crate::server::{Session, ident, literal};

/// A database of the point, loaded under a shadow name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    /// The database in the point.
    pub source: String,
    /// Its name on the target server once published.
    pub target: String,
    /// Where it is loaded meanwhile.
    pub shadow: String,
}

/// A loaded shadow database, as read just before it is published.
struct Incoming<'a> {
    shadow: &'a Shadow,
    info: DatabaseInfo,
}

/// A random tag for this restore's shadow and retired names.
pub(crate) fn tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// `<target>_<what>_<tag>`, the target cut so the name fits in 64 characters.
pub(crate) fn side_name(target: &str, what: &str, tag: &str) -> String {
    let suffix = format!("_{what}_{tag}");
    let keep = 64usize.saturating_sub(suffix.chars().count());
    let head: String = target.chars().take(keep).collect();
    format!("{head}{suffix}")
}

/// Creates a database that must not exist yet.
pub(crate) fn create_database(
    s: &mut Session,
    name: &str,
    charset: &str,
    collation: &str,
) -> Result<()> {
    let mut create = format!("CREATE DATABASE {}", ident(name));
    if !charset.is_empty() {
        create.push_str(&format!(" CHARACTER SET {charset}"));
    }
    if !collation.is_empty() {
        create.push_str(&format!(" COLLATE {collation}"));
    }
    s.exec(&format!("create database {}", ident(name)), &create)
}

fn exists(s: &mut Session, db: &str) -> Result<bool> {
    Ok(s.value(
        "inspect the target",
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(db)
        ),
    )?
    .is_some_and(|n| n != "0"))
}

/// Drops databases of this restore, ignoring failures (the original error matters more).
pub(crate) fn drop_quietly(s: &mut Session, dbs: &[String]) {
    for d in dbs {
        let _ = s.exec(
            "drop a shadow database",
            &format!("DROP DATABASE IF EXISTS {}", ident(d)),
        );
    }
}

/// What publishing changed so far, for the way back.
#[derive(Default)]
struct Done {
    /// Targets that did not exist before.
    created: Vec<String>,
    /// Retired databases made (by index of the incoming database).
    retired: Vec<Option<String>>,
    renamed: bool,
}

/// Publishes the shadows under their targets (see the module's comment). On
/// failure every target is as it was and the error says so.
pub(crate) fn publish(
    s: &mut Session,
    shadows: &[Shadow],
    tag: &str,
    force: bool,
    staged: &mut dyn FnMut(&[Shadow]) -> Result<()>,
) -> Result<u64> {
    let mut incoming = Vec::new();
    for sh in shadows {
        incoming.push(Incoming {
            shadow: sh,
            info: read_database(s, &sh.shadow)?,
        });
    }
    let incoming = &incoming[..];
    let mut before: Vec<Option<DatabaseInfo>> = Vec::new();
    for i in incoming {
        let t = &i.shadow.target;
        before.push(if exists(s, t)? {
            Some(read_database(s, t)?)
        } else {
            None
        });
    }
    let mut done = Done {
        retired: vec![None; incoming.len()],
        ..Done::default()
    };
    let r = steps(s, incoming, &before, tag, force, &mut done).and_then(|()| staged(shadows));
    match r {
        Ok(()) => {
            let retired: Vec<String> = done.retired.iter().flatten().cloned().collect();
            drop_quietly(s, &retired);
            Ok(incoming.iter().map(|i| i.info.objects.len() as u64).sum())
        }
        Err(e) => match roll_back(s, incoming, &before, &done) {
            Ok(()) => {
                let retired: Vec<String> = done.retired.iter().flatten().cloned().collect();
                drop_quietly(s, &retired);
                Err(e)
            }
            Err(back) => {
                let kept: Vec<String> = incoming
                    .iter()
                    .zip(&done.retired)
                    .filter_map(|(i, r)| {
                        r.as_ref().map(|r| {
                            format!("the old tables of `{}` are in `{r}`", i.shadow.target)
                        })
                    })
                    .collect();
                Err(MysqlError::Stranded {
                    server: s.server.clone(),
                    reason: format!(
                        "{e}; putting the targets back failed too ({back}): {}",
                        if kept.is_empty() {
                            "no table of a target was moved".to_string()
                        } else {
                            kept.join("; ")
                        }
                    ),
                })
            }
        },
    }
}

fn steps(
    s: &mut Session,
    incoming: &[Incoming<'_>],
    before: &[Option<DatabaseInfo>],
    tag: &str,
    force: bool,
    done: &mut Done,
) -> Result<()> {
    let mut renames = Vec::new();
    for (n, (i, b)) in incoming.iter().zip(before).enumerate() {
        let t = &i.shadow.target;
        match b {
            None => {
                create_database(s, t, &i.info.charset, &i.info.collation)?;
                done.created.push(t.clone());
            }
            Some(b) if !b.tables.is_empty() => {
                let r = side_name(t, "lbold", tag);
                create_database(s, &r, &b.charset, &b.collation)?;
                done.retired[n] = Some(r.clone());
                for tb in &b.tables {
                    renames.push(format!(
                        "{}.{} TO {}.{}",
                        ident(t),
                        ident(&tb.name),
                        ident(&r),
                        ident(&tb.name)
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for (i, b) in incoming.iter().zip(before) {
        drop_objects(s, &i.shadow.shadow, &i.info.objects)?;
        if let (Some(b), true) = (b, force) {
            drop_objects(s, &i.shadow.target, &b.objects)?;
        }
    }
    for i in incoming {
        for tb in &i.info.tables {
            renames.push(format!(
                "{}.{} TO {}.{}",
                ident(&i.shadow.shadow),
                ident(&tb.name),
                ident(&i.shadow.target),
                ident(&tb.name)
            ));
        }
    }
    if !renames.is_empty() {
        s.exec(
            "swap the loaded tables in (RENAME TABLE)",
            &format!("RENAME TABLE {}", renames.join(", ")),
        )?;
        done.renamed = true;
    }
    lifeboat_vault::testhook::pause("mysql-swapped");
    for i in incoming {
        let t = &i.shadow.target;
        set_charset(s, t, &i.info.charset, &i.info.collation)?;
        s.exec("use the database", &format!("USE {}", ident(t)))?;
        create_objects(s, &i.shadow.shadow, t, &i.info.objects)?;
    }
    Ok(())
}

fn roll_back(
    s: &mut Session,
    incoming: &[Incoming<'_>],
    before: &[Option<DatabaseInfo>],
    done: &Done,
) -> Result<()> {
    let mut now = Vec::new();
    for i in incoming {
        let t = &i.shadow.target;
        if exists(s, t)? {
            let info = read_database(s, t)?;
            drop_objects(s, t, &info.objects)?;
            now.push(info.tables);
        } else {
            now.push(Vec::new());
        }
    }
    if done.renamed {
        // Every table a target holds now came in with the swap or after it.
        let mut renames = Vec::new();
        for (i, tables) in incoming.iter().zip(&now) {
            for tb in tables {
                renames.push(format!(
                    "{}.{} TO {}.{}",
                    ident(&i.shadow.target),
                    ident(&tb.name),
                    ident(&i.shadow.shadow),
                    ident(&tb.name)
                ));
            }
        }
        for ((i, b), r) in incoming.iter().zip(before).zip(&done.retired) {
            if let (Some(b), Some(r)) = (b, r) {
                for tb in &b.tables {
                    renames.push(format!(
                        "{}.{} TO {}.{}",
                        ident(r),
                        ident(&tb.name),
                        ident(&i.shadow.target),
                        ident(&tb.name)
                    ));
                }
            }
        }
        s.exec(
            "put the target's tables back (RENAME TABLE)",
            &format!("RENAME TABLE {}", renames.join(", ")),
        )?;
    }
    for (i, b) in incoming.iter().zip(before) {
        if let Some(b) = b {
            let t = &i.shadow.target;
            set_charset(s, t, &b.charset, &b.collation)?;
            s.exec("use the database", &format!("USE {}", ident(t)))?;
            create_objects(s, t, t, &b.objects)?;
        }
    }
    drop_quietly(s, &done.created);
    Ok(())
}

fn set_charset(s: &mut Session, db: &str, charset: &str, collation: &str) -> Result<()> {
    let mut alter = String::new();
    if !charset.is_empty() {
        alter.push_str(&format!(" CHARACTER SET {charset}"));
    }
    if !collation.is_empty() {
        alter.push_str(&format!(" COLLATE {collation}"));
    }
    if alter.is_empty() {
        return Ok(());
    }
    s.exec(
        "set the database's character set",
        &format!("ALTER DATABASE {}{alter}", ident(db)),
    )
}

/// Drops views, routines, triggers and events of `db`.
fn drop_objects(s: &mut Session, db: &str, objects: &[Object]) -> Result<()> {
    for o in objects {
        let what = match o.kind.as_str() {
            "view" => "VIEW",
            "procedure" => "PROCEDURE",
            "function" => "FUNCTION",
            "trigger" => "TRIGGER",
            "event" => "EVENT",
            _ => continue,
        };
        s.exec(
            &format!("drop {} {}.{}", o.kind, ident(db), ident(&o.name)),
            &format!("DROP {what} IF EXISTS {}.{}", ident(db), ident(&o.name)),
        )?;
    }
    Ok(())
}

/// Creates views (retrying those that depend on views not made yet), then
/// routines, triggers and events, each under the sql_mode it was made with,
/// in the current database; references to `source` are made to `target`.
pub(crate) fn create_objects(
    s: &mut Session,
    source: &str,
    target: &str,
    objects: &[Object],
) -> Result<u64> {
    let rename = |sql: &str| -> String {
        if source == target {
            sql.to_string()
        } else {
            sql.replace(
                &format!("{}.", ident(source)),
                &format!("{}.", ident(target)),
            )
        }
    };
    let mut n = 0;
    // Each object is created as it was: under its sql_mode, client character
    // set (string literals in its body), and time zone (events).
    let create = |s: &mut Session, o: &Object| -> Result<()> {
        let mut set = vec![format!("sql_mode = {}", literal(&o.sql_mode))];
        if !o.charset_client.is_empty() {
            set.push(format!(
                "character_set_client = {}",
                literal(&o.charset_client)
            ));
        }
        if !o.collation_connection.is_empty() {
            set.push(format!(
                "collation_connection = {}",
                literal(&o.collation_connection)
            ));
        }
        if !o.time_zone.is_empty() {
            set.push(format!("time_zone = {}", literal(&o.time_zone)));
        }
        s.exec(
            "prepare the session",
            &format!("SET SESSION {}", set.join(", ")),
        )?;
        s.exec(
            &format!("create {} {}", o.kind, ident(&o.name)),
            &rename(&o.create),
        )
    };
    let mut views: Vec<&Object> = objects.iter().filter(|o| o.kind == "view").collect();
    while !views.is_empty() {
        let mut left = Vec::new();
        let mut last_err = None;
        for v in &views {
            match create(s, v) {
                Ok(()) => n += 1,
                Err(e) => {
                    last_err = Some(e);
                    left.push(*v);
                }
            }
        }
        if left.len() == views.len() {
            return Err(last_err.expect("a failure"));
        }
        views = left;
    }
    for o in objects.iter().filter(|o| o.kind != "view") {
        create(s, o)?;
        n += 1;
    }
    s.exec(
        "reset the session",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00', \
         character_set_client = binary, collation_connection = binary",
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_names_fit_in_64_characters_and_keep_the_target_visible() {
        assert_eq!(
            side_name("shop", "lbnew", "0a1b2c3d"),
            "shop_lbnew_0a1b2c3d"
        );
        let long = "é".repeat(70);
        let n = side_name(&long, "lbold", "0a1b2c3d");
        assert_eq!(n.chars().count(), 64);
        assert!(n.ends_with("_lbold_0a1b2c3d"));
        assert_ne!(tag(), "");
    }
}
