//! `rapport`: the all-in-one launcher (`rapport up`) and the operator CLI.
mod audit;
mod barometer;
mod cases;
mod cli;
mod conn;
mod context;
mod events;
mod feedback;
mod generate;
mod improvements;
mod keys;
mod loyalty;
mod output;
mod referrals;
mod routing;
mod segments;
mod sla;
mod up;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Up(args) => up::run(args).await,
        cli::Command::Loyalty(args) => loyalty::run(&cli.conn, args).await,
        cli::Command::Segments(args) => segments::run(&cli.conn, args).await,
        cli::Command::Campaign(args) => segments::campaign(&cli.conn, args).await,
        cli::Command::Gen(args) => generate::run(&cli.conn, args).await,
        cli::Command::Events(args) => events::run(&cli.conn, args).await,
        cli::Command::Audit(args) => audit::run(&cli.conn, args).await,
        cli::Command::Survey(args) => feedback::survey(&cli.conn, args).await,
        cli::Command::Nps(args) => feedback::nps(&cli.conn, args).await,
        cli::Command::Cases(args) => cases::run(&cli.conn, args).await,
        cli::Command::Themes(args) => cases::themes(&cli.conn, args).await,
        cli::Command::Routing(args) => routing::run(&cli.conn, args).await,
        cli::Command::Context { customer_id } => context::show(&cli.conn, customer_id).await,
        cli::Command::Actions(args) => context::actions(&cli.conn, args).await,
        cli::Command::Barometer(args) => barometer::run(&cli.conn, args).await,
        cli::Command::Sla(args) => sla::run(&cli.conn, args).await,
        cli::Command::Referrals(args) => referrals::run(&cli.conn, args).await,
        cli::Command::Improvements(args) => improvements::run(&cli.conn, args).await,
        cli::Command::Token(args) => keys::token(args),
        cli::Command::Keys(args) => keys::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
