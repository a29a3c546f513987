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
    #[arg(long, global = true, env = "RAPPORT_LOYALTY_ADDR", default_value = "http://127.0.0.1:50052")]
    pub loyalty_addr: String,
    /// Segmentation's address.
    #[arg(long, global = true, env = "RAPPORT_SEGMENTATION_ADDR", default_value = "http://127.0.0.1:50051")]
    pub segmentation_addr: String,
    /// Feedback's address.
    #[arg(long, global = true, env = "RAPPORT_FEEDBACK_ADDR", default_value = "http://127.0.0.1:50054")]
    pub feedback_addr: String,
    /// Referrals' address.
    #[arg(long, global = true, env = "RAPPORT_REFERRALS_ADDR", default_value = "http://127.0.0.1:50053")]
    pub referrals_addr: String,
    /// Improvement's address.
    #[arg(long, global = true, env = "RAPPORT_IMPROVEMENT_ADDR", default_value = "http://127.0.0.1:50055")]
    pub improvement_addr: String,
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
    /// Segmentation: models, segments, explanations.
    Segments(SegmentsArgs),
    /// Campaigns: an offer for a segment, through loyalty.
    Campaign(CampaignArgs),
    /// Generates a seeded synthetic data set and streams it into the running suite (or writes it to a file).
    Gen(GenArgs),
    /// Events: parked events of a service's outbox, and replaying them.
    Events(EventsArgs),
    /// The audit trail: who changed what, and when, in one service or across the suite (sre).
    Audit(AuditArgs),
    /// Surveys: schedule one after a service, record the answer, show it.
    Survey(SurveyArgs),
    /// The NPS of the last days, grouped, with its confidence interval and the daily trend.
    Nps(NpsArgs),
    /// Cases: complaints and claims, opened, answered and resolved by agents.
    Cases(CasesArgs),
    /// The theme taxonomy cases are classified with: list it, try a text, retrain.
    Themes(ThemesArgs),
    /// Queues, agents and routing rules: where cases go and who takes them.
    Routing(RoutingArgs),
    /// The customer in front of an agent: tier, segments, cases, NPS answers and the next best actions.
    Context {
        /// The customer.
        customer_id: String,
    },
    /// The rules that suggest next best actions.
    Actions(ActionsArgs),
    /// The satisfaction barometer: criteria and weights, the staff's assessment, monthly readings.
    Barometer(BarometerArgs),
    /// The SLA policy: targets per severity and tier, the escalation queue.
    Sla(SlaArgs),
    /// Referrals: codes for ambassadors, a referral in detail, the leaderboard, the review of flagged referrals.
    Referrals(ReferralsArgs),
    /// Product improvements: themes discovered in complaints, the ranked backlog, pilots, shipped fixes, the digest.
    Improvements(ImprovementsArgs),
    /// Tokens of people (sre, marketing, agent, reader) signed with the development issuer's key.
    Token(TokenArgs),
    /// Signing keys: a key folder for every service and the people's issuer, rotation, retirement.
    Keys(KeysArgs),
}

/// `rapport token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// `rapport token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a token for a person (development: production tokens come from the OIDC provider).
    Issue {
        /// The role: sre, marketing, agent, reader, or customer (its own data only; the subject is its customer id).
        #[arg(long)]
        role: String,
        /// How long it lives, e.g. 90m, 8h (at most the receivers' RAPPORT_AUTH_MAX_TTL_SECS, 12 h by default).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Who it names: an agent's id is what their changes are recorded under, a customer's token names its customer
        /// id (required then; `developer` otherwise).
        #[arg(long)]
        subject: Option<String>,
        /// The key folder (`rapport keys generate`; `rapport up` keeps its own under ./data/keys).
        #[arg(long, env = "RAPPORT_AUTH_DIR", default_value = "./data/keys")]
        keys: std::path::PathBuf,
    },
}

/// `rapport keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `rapport keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Writes a key folder: each service's private key and kid, the people's issuer's, and both JWKS files.
    Generate {
        /// The folder (must not hold keys already).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// A new signing key for a service (or `people`), added to its JWKS beside the old one.
    Rotate {
        /// The key folder.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The service, or `people`.
        name: String,
    },
    /// Removes a key from the JWKS files once nothing signs with it any more.
    Retire {
        /// The key folder.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The key's kid.
        kid: String,
    },
    /// Lists the keys of a folder's JWKS files.
    List {
        /// The key folder.
        #[arg(long, env = "RAPPORT_AUTH_DIR", default_value = "./data/keys")]
        dir: std::path::PathBuf,
    },
}

/// `rapport improvements`.
#[derive(Debug, Args)]
pub struct ImprovementsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ImprovementsCommand,
}

/// Improvement commands.
#[derive(Debug, Subcommand)]
pub enum ImprovementsCommand {
    /// Clusters the unclassified complaint texts of the last days into discovered themes.
    Discover {
        /// Texts of the last N days.
        #[arg(long, default_value_t = 180)]
        days: i64,
        /// Number of themes (default: chosen by silhouette).
        #[arg(long)]
        k: Option<i32>,
    },
    /// Every theme with its top terms and a representative text.
    Themes {
        /// Also retired, accepted and merged themes.
        #[arg(long)]
        all: bool,
    },
    /// A theme's figures over the last weeks, its most representative texts.
    Theme {
        /// The theme.
        theme_id: String,
        /// Weeks of figures.
        #[arg(long, default_value_t = 8)]
        weeks: i32,
    },
    /// Accepts a discovered theme into feedback's taxonomy.
    Accept {
        /// The discovered theme.
        theme_id: String,
        /// Its id in the taxonomy.
        #[arg(long = "as")]
        taxonomy_id: String,
    },
    /// Merges a discovered theme into another theme.
    Merge {
        /// The discovered theme.
        theme_id: String,
        /// The theme it joins.
        #[arg(long)]
        into: String,
    },
    /// Records an agent's improvement suggestion.
    Suggest {
        /// What to improve.
        text: String,
        /// The theme it is about.
        #[arg(long)]
        theme: Option<String>,
    },
    /// Adds an improvement to the backlog.
    Create {
        /// Title.
        title: String,
        /// Themes it addresses (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        themes: Vec<String>,
        /// Confidence in the estimate, above 0 and at most 1.
        #[arg(long, default_value_t = 0.5)]
        confidence: f64,
        /// Effort in person-weeks.
        #[arg(long, default_value_t = 1.0)]
        effort: f64,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The backlog, ranked by score, with the score's parts.
    List {
        /// Only this status (proposed, planned, piloting, shipped, declined, duplicate).
        #[arg(long)]
        status: Option<String>,
    },
    /// An improvement: its score, history, pilots and, once shipped, before/after.
    Show {
        /// The improvement.
        improvement_id: String,
    },
    /// Moves an improvement along its lifecycle: planned, piloting, shipped, declined or duplicate.
    Status {
        /// The improvement.
        improvement_id: String,
        /// The new status.
        status: String,
        /// Why (shown on feedback's cases when shipped).
        #[arg(long, default_value = "")]
        note: String,
        /// For duplicate: the improvement it duplicates.
        #[arg(long)]
        duplicate_of: Option<String>,
        /// For shipped: feedback surveys the customers of the noted cases again.
        #[arg(long)]
        resurvey: bool,
    },
    /// Pilots on a segment against a holdout.
    Pilot {
        /// What to do.
        #[command(subcommand)]
        command: PilotCommand,
    },
    /// The company-wide digest: ranked backlog, rising themes, pilots, before/after of shipped fixes.
    Report {
        /// Weeks of theme figures.
        #[arg(long, default_value_t = 8)]
        weeks: i32,
        /// Also write the digest as Markdown to this file.
        #[arg(long)]
        markdown: Option<std::path::PathBuf>,
    },
}

/// Pilot commands.
#[derive(Debug, Subcommand)]
pub enum PilotCommand {
    /// Starts a pilot of an improvement on a segment.
    Start {
        /// The improvement.
        improvement_id: String,
        /// The segment.
        #[arg(long)]
        segment: String,
        /// Holdout share, %.
        #[arg(long, default_value_t = 20)]
        holdout: i32,
    },
    /// A pilot compared with its holdout.
    Show {
        /// The pilot.
        pilot_id: String,
    },
    /// Ends a pilot.
    End {
        /// The pilot.
        pilot_id: String,
    },
}

/// `rapport referrals`.
#[derive(Debug, Args)]
pub struct ReferralsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ReferralsCommand,
}

/// Referral commands.
#[derive(Debug, Subcommand)]
pub enum ReferralsCommand {
    /// Issues a customer's code for a programme (the customer becomes an ambassador).
    Code {
        /// The customer.
        customer_id: String,
        /// The programme.
        #[arg(long, default_value = "default")]
        programme: String,
        /// A vanity code: 4-20 letters, digits or '-' (default: a generated one).
        #[arg(long)]
        vanity: Option<String>,
        /// Most sign-ups with the code (0: no limit).
        #[arg(long, default_value_t = 0)]
        usage_limit: i32,
    },
    /// Shows a referral: its state, the fraud signals that fired, its rewards.
    Show {
        /// The referral.
        referral_id: String,
    },
    /// Ambassadors ranked by referrals converted in the last days, then points.
    Leaderboard {
        /// The programme.
        #[arg(long, default_value = "default")]
        programme: String,
        /// The window: referrals signed up in the last N days, today included.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// How many ambassadors, 1-100.
        #[arg(long, default_value_t = 10)]
        limit: i32,
    },
    /// The flagged referrals waiting for an agent; approve or void one.
    Review(ReviewArgs),
    /// Puts back in line the rewards of a referral that loyalty refused too often (once the cause is fixed).
    Retry {
        /// The referral.
        referral_id: String,
    },
}

/// `rapport referrals review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Only this programme's flagged referrals (listing only).
    #[arg(long)]
    pub programme: Option<String>,
    /// A decision on one referral (none: list the flagged ones).
    #[command(subcommand)]
    pub command: Option<ReviewCommand>,
}

/// Review decisions.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Clears a flagged referral: it goes on as pending.
    Approve {
        /// The referral.
        referral_id: String,
        /// Why (recorded with the agent of the token).
        #[arg(long)]
        reason: String,
    },
    /// Voids a referral: unpaid rewards are cancelled, paid ones clawed back.
    Void {
        /// The referral.
        referral_id: String,
        /// Why (recorded with the agent of the token).
        #[arg(long)]
        reason: String,
    },
}

/// `rapport sla`.
#[derive(Debug, Args)]
pub struct SlaArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SlaCommand,
}

/// SLA policy commands.
#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// The policy's lines in order and the escalation queue.
    Show,
    /// Replaces the policy, e.g. --line "critical * 1h 1h 8h" --line "* vip 1h 2h 16h" --line "* * 4h 8h 48h"
    /// (severity, tier, first answer, next answer, resolution; the last line must be "* *").
    Set {
        /// A line: `severity tier first next resolution` (durations like 90m, 4h, 2d).
        #[arg(long = "line")]
        lines: Vec<String>,
        /// The queue breached cases move to.
        #[arg(long)]
        escalate_to: Option<String>,
    },
}

/// `rapport barometer`.
#[derive(Debug, Args)]
pub struct BarometerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BarometerCommand,
}

/// Barometer commands.
#[derive(Debug, Subcommand)]
pub enum BarometerCommand {
    /// The criteria: axis, measure, target, weight.
    Criteria,
    /// Re-prioritises a criterion: its weight, its target (readings already taken keep theirs).
    Set {
        /// The criterion.
        criterion_id: String,
        /// New weight.
        #[arg(long)]
        weight: Option<f64>,
        /// New target.
        #[arg(long)]
        target: Option<f64>,
    },
    /// An agent's own assessment of a month, e.g. --score quality=8 --score satisfaction=6.
    Assess {
        /// The agent.
        agent_id: String,
        /// The month, YYYY-MM.
        period: String,
        /// axis=0..10 (axes: quality, satisfaction, loyalty, profit).
        #[arg(long = "score")]
        scores: Vec<String>,
        /// What the agent adds.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The staff's assessments of a month and what each agent added.
    Staff {
        /// The month, YYYY-MM.
        period: String,
    },
    /// Takes the reading of a month.
    Read {
        /// The month, YYYY-MM.
        period: String,
        /// Replace a reading already taken.
        #[arg(long)]
        replace: bool,
    },
    /// The last readings, the index over time, and the latest in detail.
    Show {
        /// How many readings.
        #[arg(long, default_value_t = 12)]
        last: i32,
    },
}

/// `rapport actions`.
#[derive(Debug, Args)]
pub struct ActionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ActionsCommand,
}

/// Action rule commands.
#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// The rules in order, and the facts they may test.
    List,
    /// Replaces the rules, in order, e.g. --rule "callback: nps.class=detractor, cases.open>=1 -> call back today"
    /// (comparisons: = != > >= < <=; every condition must hold).
    Set {
        /// A rule: `id: condition, condition -> action`.
        #[arg(long = "rule")]
        rules: Vec<String>,
    },
}

/// `rapport routing`.
#[derive(Debug, Args)]
pub struct RoutingArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RoutingCommand,
}

/// Routing commands.
#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Queues with their open and waiting cases, agents with their load, and the rules in order.
    Show,
    /// Adds or replaces a queue.
    Queue {
        /// The queue.
        queue_id: String,
        /// Give cases to the least loaded agent instead of each in turn.
        #[arg(long)]
        least_loaded: bool,
    },
    /// Adds or replaces an agent.
    Agent {
        /// The agent (its token's subject).
        agent_id: String,
        /// Queues it serves, comma-separated.
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
        /// Most open cases it holds.
        #[arg(long, default_value_t = 10)]
        capacity: i32,
        /// Added offline.
        #[arg(long)]
        offline: bool,
    },
    /// Brings an agent online.
    Online {
        /// The agent.
        agent_id: String,
    },
    /// Takes an agent offline: its open cases go to the others of their queues.
    Offline {
        /// The agent.
        agent_id: String,
    },
    /// Replaces the rules, in order, e.g. --rule "vips: tier=vip -> vip-desk" --rule "parcels: theme=delivery ->
    /// logistics" (conditions: theme, channel, severity, tier, segment — values separated by | — and detractors).
    Rules {
        /// A rule: `id: condition, condition -> queue`.
        #[arg(long = "rule")]
        rules: Vec<String>,
    },
}

/// `rapport cases`.
#[derive(Debug, Args)]
pub struct CasesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CasesCommand,
}

/// Case commands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Opens a complaint (or a claim) with the customer's words; prints its theme and why.
    Open {
        /// The customer.
        customer_id: String,
        /// What the customer wrote.
        text: String,
        /// A claim (needs a root cause and a corrective action to close) instead of a complaint.
        #[arg(long)]
        claim: bool,
        /// Channel: web, mobile, store, phone, email, social or chat.
        #[arg(long, default_value = "email")]
        channel: String,
        /// Severity: low, medium, high or critical.
        #[arg(long, default_value = "medium")]
        severity: String,
        /// The order it is about.
        #[arg(long, default_value = "")]
        order: String,
    },
    /// Lists cases, newest first.
    List {
        /// Only open or resolved cases.
        #[arg(long)]
        state: Option<String>,
        /// Only this theme.
        #[arg(long)]
        theme: Option<String>,
        /// Only this customer.
        #[arg(long)]
        customer: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
    /// How fast cases were answered and resolved: percentiles, SLA attainment, the half-day share.
    Report {
        /// The window: cases opened in the last N days, today included.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Grouping: queue, channel, tier, segment, theme or agent.
        #[arg(long, default_value = "queue")]
        by: String,
    },
    /// Shows a case and its messages.
    Show {
        /// The case.
        case_id: String,
    },
    /// Answers a case as the agent of the token.
    Respond {
        /// The case.
        case_id: String,
        /// The answer.
        text: String,
    },
    /// The customer writes again (after the first answer, a next-response clock starts).
    Message {
        /// The case.
        case_id: String,
        /// The customer's words.
        text: String,
    },
    /// Marks a case as waiting for the customer (its SLA clocks stop), or with --done as answered by the customer.
    Wait {
        /// The case.
        case_id: String,
        /// The customer answered: the clocks run again.
        #[arg(long)]
        done: bool,
    },
    /// Resolves a case.
    Resolve {
        /// The case.
        case_id: String,
        /// What was done.
        #[arg(long)]
        resolution: String,
        /// Why it happened (required for a claim).
        #[arg(long, default_value = "")]
        root_cause: String,
        /// What changes so it does not happen again (required for a claim).
        #[arg(long, default_value = "")]
        corrective_action: String,
    },
}

/// `rapport themes`.
#[derive(Debug, Args)]
pub struct ThemesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ThemesCommand,
}

/// Taxonomy commands.
#[derive(Debug, Subcommand)]
pub enum ThemesCommand {
    /// The themes, their keywords and how many examples each has.
    List,
    /// Classifies a text without opening a case.
    Classify {
        /// The text.
        text: String,
    },
    /// Trains the classifier on the taxonomy as edited; every replica then classifies with it.
    Train,
}

/// `rapport survey`.
#[derive(Debug, Args)]
pub struct SurveyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SurveyCommand,
}

/// Survey commands.
#[derive(Debug, Subcommand)]
pub enum SurveyCommand {
    /// Schedules an NPS survey of a customer after a service.
    Schedule {
        /// The customer.
        customer_id: String,
        /// Where the service happened, e.g. delivery.
        #[arg(long)]
        touchpoint: String,
        /// Channel: web, mobile, store, phone, email, social or chat.
        #[arg(long, default_value = "email")]
        channel: String,
        /// Days since the customer's previous survey before another (default 7).
        #[arg(long, default_value_t = 0)]
        min_days: i32,
        /// A resolved case of the customer: a recovery survey, not held back by the waiting time.
        #[arg(long)]
        after_case: Option<String>,
    },
    /// Records a customer's answer (0-10).
    Answer {
        /// The survey.
        survey_id: String,
        /// 0 to 10.
        #[arg(long)]
        score: i32,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Shows a survey and its answer.
    Show {
        /// The survey.
        survey_id: String,
    },
}

/// `rapport nps`.
#[derive(Debug, Args)]
pub struct NpsArgs {
    /// The window: the last N days, today included.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Grouping: day, channel, touchpoint, tier or segment.
    #[arg(long, default_value = "channel")]
    pub by: String,
}

/// `rapport events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The producing service whose outbox to look at: loyalty, segmentation, feedback, referrals or improvement.
    #[arg(long, default_value = "loyalty")]
    pub service: String,
    /// What to do.
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// Outbox commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Lists events a subscriber refused until they were parked.
    Parked {
        /// Only this subscriber (destination); the service's own name: the events it received over JetStream and
        /// parked itself.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Puts a subscriber's parked events back in line, in their original order.
    Retry {
        /// The subscriber (destination), e.g. segmentation.
        destination: String,
        /// Only these event ids (default: every parked event of the destination).
        #[arg(long = "event")]
        events: Vec<String>,
    },
}

/// `rapport audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this service's trail (default: every service's, merged, newest first).
    #[arg(long)]
    pub service: Option<String>,
    /// Only changes about this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only changes by this subject (a person's or a service's token subject, or a worker's name).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes by this role, e.g. agent; `system` for the services' own workers.
    #[arg(long)]
    pub role: Option<String>,
    /// Only this RPC or worker action, e.g. AdjustPoints.
    #[arg(long)]
    pub method: Option<String>,
    /// Only the last this many days.
    #[arg(long)]
    pub days: Option<i64>,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `rapport gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Customers.
    #[arg(long, default_value_t = 1000)]
    pub customers: u64,
    /// Seed: the same seed gives the same data set.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write JSON lines here instead of streaming into the suite.
    #[arg(long)]
    pub out: Option<String>,
    /// Do not enrol the customers in loyalty.
    #[arg(long)]
    pub no_enrol: bool,
}

/// `rapport segments`.
#[derive(Debug, Args)]
pub struct SegmentsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SegmentsCommand,
}

/// Segmentation commands.
#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Trains a clustering model (k chosen by silhouette unless given).
    Train {
        /// Clusters (0 = choose).
        #[arg(long, default_value_t = 0)]
        k: i32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Wait for the job, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// A Gaussian mixture instead of k-means.
        #[arg(long)]
        gmm: bool,
    },
    /// The active model's clusters.
    Model,
    /// Creates a rule segment, e.g. `rapport segments create big "monetary_365d >= 500 and nps = promoter"`.
    Create {
        /// Segment id.
        segment_id: String,
        /// Conditions joined by `and`: `<feature> <op> <number>`, `cluster in 1,2`, `tier in gold,vip`,
        /// `nps = promoter`, `segment = <id>`, `attribute.<name> = <value>`.
        rule: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Every segment with its size.
    List,
    /// One segment: its rule and size.
    Show {
        /// Segment id.
        segment_id: String,
    },
    /// A segment's members.
    Members {
        /// Segment id.
        segment_id: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Why a customer is (or is not) in a segment, or in its cluster when no segment is given.
    Explain {
        /// Customer id.
        customer_id: String,
        /// Segment id.
        #[arg(long)]
        segment: Option<String>,
    },
}

/// `rapport campaign`.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CampaignCommand,
}

/// Campaign commands.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Grants an offer to a segment's members, leaving a holdout group out.
    Trigger {
        /// Campaign id.
        campaign_id: String,
        /// Segment.
        #[arg(long)]
        segment: String,
        /// Loyalty offer.
        #[arg(long)]
        offer: String,
        /// Percent held out.
        #[arg(long, default_value_t = 10)]
        holdout: i32,
        /// Wait until every member is handled, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// A campaign's progress.
    Show {
        /// Campaign id.
        campaign_id: String,
    },
}

/// `rapport up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Folder for the SQLite files, the development keys (`keys/`, unless RAPPORT_AUTH_DIR names others) and the
    /// development token.
    #[arg(long, default_value = "./data")]
    pub data_dir: String,
    /// First port; services take consecutive ones (segmentation = base, loyalty = base + 1, referrals = base + 2,
    /// feedback = base + 3, improvement = base + 4); 0 = any free ports.
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
    /// Offers.
    Offer {
        /// What to do.
        #[command(subcommand)]
        command: OfferCommand,
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

/// Offer commands.
#[derive(Debug, Subcommand)]
pub enum OfferCommand {
    /// Defines a percent-off offer valid from now for some days.
    Create {
        /// Offer id.
        offer_id: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Percent off.
        #[arg(long, default_value_t = 10)]
        percent: i64,
        /// Days of validity.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Tiers that may receive it (bronze, silver, gold, vip); none = all.
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<String>,
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
