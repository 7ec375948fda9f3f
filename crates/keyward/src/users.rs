//! `keyward users …`: the members who log in to the dashboard, managed on the server's
//! machine as the operator, through the service functions the dashboard calls.
//!
//! The operator may make and remove owners; the service still keeps one owner in every
//! organization that has members. Passwords are generated and printed once, or read from
//! standard input; they never appear in the process list.

use anyhow::{Context, bail};
use clap::Subcommand;
use keyward_core::clock::rfc3339;
use keyward_core::member::{Member, MemberRole};
use keyward_service::error::Conflict;
use keyward_service::{Operator, Service, ServiceError};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{OrgArg, organization};

/// `keyward users …`.
// The flattened fields' help is their own fields'.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a member to an organization; prints a generated password once, or reads one
    /// from standard input with --password-stdin
    Add {
        #[command(flatten)]
        org: OrgArg,
        /// The member's email (the login name)
        #[arg(long)]
        email: String,
        /// What the member may do; by default owner for an organization's first member,
        /// developer after
        #[arg(long, value_parser = parse_role)]
        role: Option<MemberRole>,
        /// Read the password (at least 12 characters) from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the members of an organization (of every organization with --all)
    List {
        #[command(flatten)]
        org: OrgArg,
        /// Every organization's members
        #[arg(long, conflicts_with = "org")]
        all: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Give a member another role (owner, admin, developer or viewer)
    SetRole {
        /// The member's email
        #[arg(long)]
        email: String,
        /// The new role
        #[arg(long, value_parser = parse_role)]
        role: MemberRole,
    },
    /// Remove a member and end the member's sessions
    Remove {
        /// The member's email
        #[arg(long)]
        email: String,
    },
    /// Turn off a member's two-step verification (for a member who lost both the
    /// authenticator app and the recovery codes)
    ResetTwoStep {
        /// The member's email
        #[arg(long)]
        email: String,
    },
    /// Set a member's password and end the member's sessions (a reset by the operator);
    /// prints a generated password once, or reads one from standard input with
    /// --password-stdin
    Passwd {
        /// The member's email
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Reads a role name.
fn parse_role(text: &str) -> Result<MemberRole, String> {
    MemberRole::parse(text).ok_or_else(|| "expected owner, admin, developer or viewer".to_owned())
}

/// The password from the first line of standard input, or none to have one generated.
fn password_from_stdin(read: bool) -> anyhow::Result<Option<Zeroizing<String>>> {
    if !read {
        return Ok(None);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(Some(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    )))
}

/// What a member error says on the command line, in one line with what to do next.
fn explained(error: ServiceError, email: &str) -> anyhow::Error {
    match error {
        ServiceError::NotFound => {
            anyhow::anyhow!("no member with the email {email}; `keyward users list` shows them")
        }
        ServiceError::Conflict(Conflict::LastOwner) => anyhow::anyhow!(
            "{email} is the organization's last owner; make another member owner first \
             (`keyward users set-role --email … --role owner`)"
        ),
        ServiceError::Validation(error) => anyhow::anyhow!("--{} {}", error.field, error.message),
        other => other.into(),
    }
}

/// Runs a `users` command.
pub async fn users(service: &Service, command: UsersCommand) -> anyhow::Result<()> {
    let operator = Operator::new();
    let members = service.members();
    match command {
        UsersCommand::Add {
            org,
            email,
            role,
            password_stdin,
        } => {
            let organization_id = organization(service, &operator, &org).await?;
            let password = password_from_stdin(password_stdin)?;
            let (member, generated) = members
                .add(&operator, &organization_id, &email, role, password)
                .await
                .map_err(|e| explained(e, &email))?;
            print_changed("Added", &member, generated);
        }
        UsersCommand::Passwd {
            email,
            password_stdin,
        } => {
            let password = password_from_stdin(password_stdin)?;
            let (member, generated) = members
                .set_password(&operator, &email, password)
                .await
                .map_err(|e| explained(e, &email))?;
            print_changed("Set the password of", &member, generated);
        }
        UsersCommand::SetRole { email, role } => {
            let member = members
                .set_role_by_email(&operator, &email, role)
                .await
                .map_err(|e| explained(e, &email))?;
            print_changed("Changed the role of", &member, None);
        }
        UsersCommand::ResetTwoStep { email } => {
            let member = members
                .reset_second_factor(&operator, &email)
                .await
                .map_err(|e| explained(e, &email))?;
            print_changed("Turned off two-step verification of", &member, None);
        }
        UsersCommand::Remove { email } => {
            let member = members
                .remove_by_email(&operator, &email)
                .await
                .map_err(|e| explained(e, &email))?;
            print_changed("Removed", &member, None);
        }
        UsersCommand::List { org, all, json } => {
            let organization_id = if all {
                None
            } else {
                Some(organization(service, &operator, &org).await?)
            };
            let found = members
                .list_all(&operator, organization_id.as_ref())
                .await?;
            print_members(&found, json)?;
        }
    }
    Ok(())
}

fn print_changed(verb: &str, member: &Member, password: Option<Zeroizing<String>>) {
    println!(
        "{verb} {} ({}, {}) of {}.",
        member.email, member.id, member.role, member.organization_id
    );
    if let Some(password) = password {
        println!("  Password: {}", password.as_str());
        println!("The password is shown only this once.");
    }
}

fn print_members(members: &[Member], json: bool) -> anyhow::Result<()> {
    let never = "never".to_owned();
    if json {
        let rows: Vec<_> = members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "organization_id": m.organization_id,
                    "email": m.email,
                    "role": m.role,
                    "created_at": rfc3339(m.created_at),
                    "last_login_at": m.last_login_at.map(rfc3339),
                    "two_step": m.second_factor,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if members.is_empty() {
        bail!("no members yet: `keyward users add --email …` adds one");
    }
    println!(
        "{:<32}  {:<9}  {:<20}  {:<20}  ORGANIZATION",
        "EMAIL", "ROLE", "ADDED", "LAST LOGIN"
    );
    for m in members {
        println!(
            "{:<32}  {:<9}  {:<20}  {:<20}  {}",
            m.email,
            m.role.as_str(),
            rfc3339(m.created_at),
            m.last_login_at
                .map(rfc3339)
                .unwrap_or_else(|| never.clone()),
            m.organization_id
        );
    }
    Ok(())
}
