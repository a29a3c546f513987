//! `rapport token issue` and `rapport keys …`: development tokens of people, and the key folders services sign
//! with (generate, rotate, retire, list).
use std::{collections::HashMap, path::Path};

use anyhow::{Context, bail};
use rapport_kit::auth::{self, Authenticator, DevelopmentKeys, KeySet, Role, keys};

use crate::{
    cli::{KeysArgs, KeysCommand, TokenArgs, TokenCommand},
    output,
};

/// `rapport token …`.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let TokenCommand::Issue { role, ttl, subject, keys: dir } = args.command;
    let role: Role = role.parse().map_err(anyhow::Error::msg)?;
    if role.is_service() {
        bail!("{role} is a service: services sign their own calls with their own key");
    }
    let subject = match subject {
        Some(s) if !s.trim().is_empty() => s,
        _ if role == Role::Customer => bail!("a customer's token names its customer: --subject <customer id>"),
        _ => "developer".into(),
    };
    let ttl_ms = crate::sla::duration(&ttl)?;
    if ttl_ms <= 0 {
        bail!("--ttl must be positive");
    }
    let signer = keys::read_signer(&dir, "people")
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("no people's key in {} (rapport keys generate, or rapport up)", dir.display()))?;
    let settings = auth::Settings::from_env().map_err(anyhow::Error::msg)?;
    let issuer = settings.people_issuer.unwrap_or_else(|| auth::DEVELOPMENT_ISSUER.into());
    let audience = settings.audience.unwrap_or_else(|| auth::DEFAULT_AUDIENCE.into());
    let mut auth = Authenticator::new(KeySet::default(), HashMap::new(), Some(signer), &issuer, &audience);
    if let Some(max) = settings.max_ttl_secs {
        auth = auth.with_max_ttl(max);
    }
    let secs = u64::try_from(ttl_ms / 1000).unwrap_or(0);
    println!("{}", auth.issue(&subject, role, secs).map_err(anyhow::Error::msg)?);
    Ok(())
}

/// `rapport keys …`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Generate { out } => {
            if out.join(keys::files::SERVICES_JWKS).exists() || out.join(keys::files::key("people")).exists() {
                bail!("{} holds keys already: rotate them instead", out.display());
            }
            DevelopmentKeys::generate().write(&out).map_err(anyhow::Error::msg)?;
            println!("keys of every service and of the people's issuer written to {}", out.display());
            list(&out)
        }
        KeysCommand::Rotate { dir, name } => {
            let kid = keys::rotate(&dir, &name).map_err(anyhow::Error::msg)?;
            println!(
                "{kid} published: receivers trust it once they reload the key set (RAPPORT_AUTH_RELOAD_MS); then \
                 restart {name}, which signs with it from its next start"
            );
            Ok(())
        }
        KeysCommand::Retire { dir, kid } => {
            keys::retire(&dir, &kid).map_err(anyhow::Error::msg)?;
            println!("{kid} retired: tokens it signed are refused once receivers reload the key set");
            Ok(())
        }
        KeysCommand::List { dir } => list(&dir),
    }
}

fn list(dir: &Path) -> anyhow::Result<()> {
    let mut t = output::table(&["kid", "speaks for", "algorithm", "signing"]);
    let signing: Vec<String> = Role::SERVICES
        .iter()
        .map(|r| r.as_str())
        .chain(["people"])
        .filter_map(|n| keys::read(dir, &keys::files::kid(n)).ok().map(|k| k.trim().to_string()))
        .collect();
    let services = keys::read(dir, keys::files::SERVICES_JWKS).map_err(anyhow::Error::msg)?;
    let people = keys::read(dir, keys::files::PEOPLE_JWKS).ok();
    let set = KeySet::parse(&services, people.as_deref(), auth::DEVELOPMENT_ISSUER).map_err(anyhow::Error::msg)?;
    for kid in set.kids() {
        let Some(key) = set.get(&kid) else { continue };
        let speaks = match key.speaker {
            auth::Speaker::Service(r) => r.as_str().to_string(),
            auth::Speaker::People => "people".to_string(),
        };
        let signs = if signing.contains(&kid) { "yes" } else { "" };
        t.add_row(vec![kid.clone(), speaks, format!("{:?}", key.alg), signs.to_string()]);
    }
    println!("{t}");
    Ok(())
}
