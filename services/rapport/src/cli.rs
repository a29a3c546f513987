//! Command-line shape.
use clap::{Args, Parser, Subcommand};

/// Rapport: customer care that turns what customers do and say into segments, loyalty, referrals, fast complaint
/// handling and product improvements.
#[derive(Debug, Parser)]
#[command(name = "rapport", version)]
pub struct Cli {
    /// Connection to the services (operator commands).
    #[command(flatten)]
    pub conn: Conn,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How operator commands reach the services.
#[derive(Debug, Args)]
pub struct Conn {
    /// Loyalty's address.
    #[arg(
        long,
        global = true,
        env = "RAPPORT_LOYALTY_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub loyalty_addr: String,
    /// Bearer token; defaults to the development token `rapport up` writes to ./data/dev-token.
    #[arg(long, global = true, env = "RAPPORT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs every service in one process on loopback, with SQLite under ./data.
    Up(UpArgs),
    /// Loyalty: members and points.
    Loyalty(LoyaltyArgs),
}

/// `rapport up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Folder for the SQLite files and the development token.
    #[arg(long, default_value = "./data")]
    pub data_dir: String,
    /// First port; services take consecutive ones (loyalty = base + 1).
    #[arg(long, default_value_t = 50051)]
    pub base_port: u16,
}

/// `rapport loyalty`.
#[derive(Debug, Args)]
pub struct LoyaltyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LoyaltyCommand,
}

/// Loyalty commands.
#[derive(Debug, Subcommand)]
pub enum LoyaltyCommand {
    /// Members.
    Member {
        /// What to do.
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Credits points to a member.
    Earn {
        /// Customer id.
        customer_id: String,
        /// Points.
        points: i64,
        /// Why.
        #[arg(long, default_value = "goodwill")]
        reason: String,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Spends a member's points.
    Redeem {
        /// Customer id.
        customer_id: String,
        /// Points.
        points: i64,
        /// What for.
        #[arg(long, default_value = "redemption")]
        reason: String,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// A member's ledger, newest first.
    Transactions {
        /// Customer id.
        customer_id: String,
        /// Entries to show.
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
}

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Enrols a customer.
    Enrol {
        /// Customer id.
        customer_id: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Shows a member: tier, balance breakdown, progress.
    Show {
        /// Customer id.
        customer_id: String,
    },
}
