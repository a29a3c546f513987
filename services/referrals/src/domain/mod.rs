//! Referrals, pure: programme rules and what converts a referral, codes (generated and vanity), e-mail
//! normalisation, the lifecycle, rewards per conversion and milestones. Fraud screening is in `screening.rs`.
use serde::{Deserialize, Serialize};

pub mod screening;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// One currency unit in micro-units.
const UNIT: i128 = 1_000_000;

/// What converts a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifying {
    /// The sign-up itself.
    SignUp,
    /// The referee's first purchase.
    FirstPurchase,
    /// Every purchase inside the attribution window.
    EveryPurchase,
    /// The first purchase of at least the minimum order.
    MinOrderValue,
}

/// A reward of one side: fixed points plus a share of the order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    /// Fixed points.
    pub points: i64,
    /// Share of the order in basis points: one point per currency unit of the share.
    pub share_bps: i32,
}

impl Reward {
    /// The points for an order of `order_micros` (0 for a sign-up).
    pub fn points_for(&self, order_micros: i64) -> i64 {
        let share = i128::from(order_micros.max(0)) * i128::from(self.share_bps) / 10_000 / UNIT;
        self.points.saturating_add(i64::try_from(share).unwrap_or(i64::MAX))
    }
}

/// A milestone bonus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    /// Which approved referral of the ambassador, from 1.
    pub count: i32,
    /// Bonus points.
    pub bonus_points: i64,
}

/// Velocity limits and caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Sign-ups per code per hour beyond which a sign-up is refused.
    pub max_signups_per_hour: i32,
    /// Sign-ups per code per day beyond which a sign-up is refused.
    pub max_signups_per_day: i32,
    /// Sign-ups per code in the last hour from which the velocity signal fires.
    pub velocity_signal_per_hour: i32,
    /// Referrals per ambassador in the last 30 days from which the cap signal fires.
    pub max_referrals_per_month: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_signups_per_hour: 20,
            max_signups_per_day: 100,
            velocity_signal_per_hour: 5,
            max_referrals_per_month: 50,
        }
    }
}

/// The rules of a programme version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// Name shown to people.
    pub name: String,
    /// What converts a referral.
    pub qualifying: Qualifying,
    /// Smallest qualifying order (micro-units) for `MinOrderValue`.
    pub min_order_micros: i64,
    /// Its currency (empty: any).
    pub min_order_currency: String,
    /// The referrer's reward.
    pub referrer: Reward,
    /// The referee's reward.
    pub referee: Reward,
    /// Days from first sight to sign-up, and from sign-up to conversion.
    pub attribution_window_days: i32,
    /// Days from conversion to payment.
    pub approval_delay_days: i32,
    /// Days from a converting purchase during which its return voids the referral.
    pub returns_window_days: i32,
    /// Milestone bonuses, by count.
    pub milestones: Vec<Milestone>,
    /// Velocity limits and caps.
    pub limits: Limits,
    /// Score from which a referral is flagged.
    pub flag_threshold: f64,
    /// Start of the active period.
    pub active_from: i64,
    /// End of the active period, exclusive.
    pub active_until: Option<i64>,
}

/// The `default` programme every database starts with (the one promoters are invited to): the referee's first
/// purchase converts, 500 points to each side, 30 days to sign up and to buy, rewards paid once 14 days of returns
/// are over.
pub fn default_programme() -> Rules {
    Rules {
        name: "Friends and family".into(),
        qualifying: Qualifying::FirstPurchase,
        min_order_micros: 0,
        min_order_currency: String::new(),
        referrer: Reward { points: 500, share_bps: 0 },
        referee: Reward { points: 500, share_bps: 0 },
        attribution_window_days: 30,
        approval_delay_days: 14,
        returns_window_days: 14,
        milestones: vec![Milestone { count: 5, bonus_points: 1_000 }],
        limits: Limits::default(),
        flag_threshold: 0.5,
        active_from: 0,
        active_until: None,
    }
}

/// A purchase of a referee, as loyalty published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The order.
    pub order_id: String,
    /// Its amount in micro-units.
    pub amount_micros: i64,
    /// Its currency.
    pub currency: String,
    /// When it was made.
    pub at: i64,
}

impl Rules {
    /// Whether the programme takes sign-ups at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        now >= self.active_from && self.active_until.is_none_or(|end| now < end)
    }

    /// Whether a sign-up at `now` of a referee first seen at `first_seen` is inside the attribution window.
    pub fn attributable(&self, first_seen: i64, now: i64) -> bool {
        now - first_seen <= i64::from(self.attribution_window_days) * DAY_MS
    }

    /// Whether the sign-up converts the referral by itself.
    pub fn converts_at_signup(&self) -> bool {
        self.qualifying == Qualifying::SignUp
    }

    /// Whether `purchase` converts a referral signed up at `signed_up_at` that has converted `conversions` times.
    pub fn converts(&self, signed_up_at: i64, conversions: i32, purchase: &Purchase) -> bool {
        let inside = purchase.at >= signed_up_at
            && purchase.at - signed_up_at <= i64::from(self.attribution_window_days) * DAY_MS;
        if !inside {
            return false;
        }
        match self.qualifying {
            Qualifying::SignUp => false,
            Qualifying::FirstPurchase => conversions == 0,
            Qualifying::EveryPurchase => true,
            Qualifying::MinOrderValue => {
                let currency_ok = self.min_order_currency.is_empty() || self.min_order_currency == purchase.currency;
                conversions == 0 && currency_ok && purchase.amount_micros >= self.min_order_micros
            }
        }
    }

    /// When the rewards of a conversion at `converted_at` are due.
    pub fn due_at(&self, converted_at: i64) -> i64 {
        converted_at + i64::from(self.approval_delay_days) * DAY_MS
    }

    /// Whether a return at `returned_at` of an order converting at `converted_at` is inside the returns window.
    pub fn inside_returns_window(&self, converted_at: i64, returned_at: i64) -> bool {
        returned_at - converted_at <= i64::from(self.returns_window_days) * DAY_MS
    }

    /// Whether what is left of an order of `amount_micros` after a return still converts.
    pub fn still_converts(&self, fully_returned: bool, kept_micros: i64) -> bool {
        !fully_returned && (self.qualifying != Qualifying::MinOrderValue || kept_micros >= self.min_order_micros)
    }

    /// The bonus for the ambassador's `approved`-th approved referral, if a milestone says so.
    pub fn milestone_bonus(&self, approved: i64) -> Option<i64> {
        self.milestones.iter().find(|m| i64::from(m.count) == approved).map(|m| m.bonus_points)
    }
}

/// State of a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Signed up; waits for its conversion and the approval delay.
    Pending,
    /// The screening fired; waits for an agent.
    Flagged,
    /// Rewards due.
    Approved,
    /// Every reward paid.
    Rewarded,
    /// Voided.
    Voided,
}

impl State {
    /// Every state.
    pub const ALL: [State; 5] = [State::Pending, State::Flagged, State::Approved, State::Rewarded, State::Voided];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Flagged => "flagged",
            State::Approved => "approved",
            State::Rewarded => "rewarded",
            State::Voided => "voided",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// State of a reward, stored by name.
pub mod reward {
    /// Waits for the referral's approval.
    pub const HELD: &str = "held";
    /// To be paid.
    pub const DUE: &str = "due";
    /// Being paid: the worker claimed it and called loyalty, which may have paid it (no answer recorded yet).
    pub const PAYING: &str = "paying";
    /// Paid.
    pub const PAID: &str = "paid";
    /// Cancelled before payment.
    pub const CANCELLED: &str = "cancelled";
    /// Paid (or perhaps paid: voided while being paid, its entry id not known yet), to be clawed back.
    pub const CLAWBACK_DUE: &str = "clawback_due";
    /// Clawed back.
    pub const CLAWED_BACK: &str = "clawed_back";

    /// What voiding does to a reward in `state`: held and due ones are cancelled, paid ones clawed back, and one
    /// being paid is clawed back too (the worker first learns its entry by asking loyalty again under the same
    /// request id: a payment that was made is replayed, one that was not is made then — and reversed — or refused,
    /// and then there is nothing to take back).
    pub fn on_void(state: &str) -> Option<&'static str> {
        match state {
            HELD | DUE => Some(CANCELLED),
            PAYING | PAID => Some(CLAWBACK_DUE),
            _ => None,
        }
    }

    /// What a payment loyalty made does to a reward now in `state`: one being paid (or still due, if its claim was
    /// reset) is paid; one voided meanwhile is to be clawed back.
    pub fn on_paid(state: &str) -> Option<&'static str> {
        match state {
            PAYING | DUE => Some(PAID),
            CANCELLED | CLAWBACK_DUE => Some(CLAWBACK_DUE),
            _ => None,
        }
    }
}

/// The 32 symbols of generated codes (Crockford's base 32: no I, L, O or U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A generated code from 50 random bits: `XXXXX-XXXXX`.
pub fn generate_code(random: [u8; 16]) -> String {
    let bits = u64::from_le_bytes([random[0], random[1], random[2], random[3], random[4], random[5], random[6], 0]);
    let mut out = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            out.push('-');
        }
        let symbol = (bits >> (5 * i)) & 31;
        out.push(char::from(ALPHABET[symbol as usize]));
    }
    out
}

/// The key a code is found by: upper case, spaces dropped, Crockford's look-alikes read as the digits they stand for
/// in generated codes (so `abcde-fghjk`, `ABCDE FGHJK` and the code with an O for a 0 are one code).
pub fn code_key(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// Whether `s` is an acceptable vanity code: 4-20 ASCII letters, digits or '-', not starting or ending with '-'.
pub fn valid_vanity(s: &str) -> bool {
    (4..=20).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An e-mail address normalised so that one mailbox has one form: trimmed, lower case, `+tag` dropped, and for
/// Gmail the dots of the local part dropped and `googlemail.com` read as `gmail.com`. `None` when it is no address.
pub fn normalise_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    // An address is at most 254 characters, with no spaces, controls or the brackets of a "Name <address>" form.
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;\"".contains(c)) {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or_default();
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return None;
    }
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_string(), domain),
    };
    Some(format!("{local}@{domain}"))
}

/// Whether `s` looks like a fingerprint hash: 16-128 hexadecimal digits.
pub fn valid_hash(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The points of a conversion for each side: (referrer, referee).
pub fn conversion_points(rules: &Rules, order_micros: i64) -> (i64, i64) {
    (rules.referrer.points_for(order_micros), rules.referee.points_for(order_micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rules() -> Rules {
        Rules {
            name: "friends".into(),
            qualifying: Qualifying::FirstPurchase,
            min_order_micros: 0,
            min_order_currency: String::new(),
            referrer: Reward { points: 500, share_bps: 0 },
            referee: Reward { points: 200, share_bps: 1_000 },
            attribution_window_days: 30,
            approval_delay_days: 14,
            returns_window_days: 14,
            milestones: vec![Milestone { count: 5, bonus_points: 1_000 }],
            limits: Limits::default(),
            flag_threshold: 0.5,
            active_from: 0,
            active_until: None,
        }
    }

    fn purchase(at: i64, euros: i64) -> Purchase {
        Purchase { order_id: "o".into(), amount_micros: euros * 1_000_000, currency: "EUR".into(), at }
    }

    #[test]
    fn a_share_is_one_point_per_unit_of_the_share() {
        let r = Reward { points: 200, share_bps: 1_000 };
        assert_eq!(r.points_for(80_000_000), 208);
        assert_eq!(r.points_for(9_990_000), 200, "10 % of 9.99 is 0.999: no whole point");
        assert_eq!(r.points_for(0), 200);
        assert_eq!(conversion_points(&rules(), 80_000_000), (500, 208));
    }

    #[test]
    fn what_converts() {
        let mut r = rules();
        assert!(r.converts(0, 0, &purchase(DAY_MS, 10)));
        assert!(!r.converts(0, 1, &purchase(DAY_MS, 10)), "first purchase only");
        assert!(!r.converts(0, 0, &purchase(31 * DAY_MS, 10)), "after the attribution window");
        assert!(!r.converts(DAY_MS, 0, &purchase(0, 10)), "before the sign-up");
        r.qualifying = Qualifying::EveryPurchase;
        assert!(r.converts(0, 3, &purchase(DAY_MS, 10)));
        r.qualifying = Qualifying::MinOrderValue;
        r.min_order_micros = 50_000_000;
        r.min_order_currency = "EUR".into();
        assert!(!r.converts(0, 0, &purchase(DAY_MS, 49)));
        assert!(r.converts(0, 0, &purchase(DAY_MS, 50)));
        let mut usd = purchase(DAY_MS, 60);
        usd.currency = "USD".into();
        assert!(!r.converts(0, 0, &usd), "another currency does not meet the minimum");
        assert!(r.still_converts(false, 50_000_000));
        assert!(!r.still_converts(false, 49_000_000), "a return taking the order below the minimum");
        assert!(!r.still_converts(true, 0));
        r.qualifying = Qualifying::SignUp;
        assert!(r.converts_at_signup());
        assert!(!r.converts(0, 0, &purchase(DAY_MS, 10)));
    }

    #[test]
    fn windows_and_periods() {
        let mut r = rules();
        assert!(r.attributable(0, 30 * DAY_MS));
        assert!(!r.attributable(0, 30 * DAY_MS + 1));
        assert_eq!(r.due_at(DAY_MS), 15 * DAY_MS);
        assert!(r.inside_returns_window(0, 14 * DAY_MS));
        assert!(!r.inside_returns_window(0, 14 * DAY_MS + 1));
        r.active_from = 10;
        r.active_until = Some(20);
        assert!(!r.is_active(9));
        assert!(r.is_active(10));
        assert!(!r.is_active(20));
        assert_eq!(r.milestone_bonus(5), Some(1_000));
        assert_eq!(r.milestone_bonus(4), None);
    }

    #[test]
    fn generated_codes_are_readable_and_differ() {
        let a = generate_code([7; 16]);
        let b = generate_code([8; 16]);
        assert_eq!(a.len(), 11);
        assert_eq!(&a[5..6], "-");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        assert!(!a.contains(['I', 'L', 'O', 'U']));
        assert_eq!(code_key(&a.to_lowercase()), code_key(&a));
        assert_eq!(code_key("ab o1 l"), "AB011");
    }

    #[test]
    fn vanity_codes() {
        assert!(valid_vanity("ALICE-2026"));
        assert!(valid_vanity("bob1"));
        assert!(!valid_vanity("bob"));
        assert!(!valid_vanity("-bob1"));
        assert!(!valid_vanity("bob 1"));
        assert!(!valid_vanity("émile1"));
        assert!(!valid_vanity(&"a".repeat(21)));
    }

    #[test]
    fn one_mailbox_one_form() {
        assert_eq!(normalise_email(" John.Doe+promo@GMail.com "), Some("johndoe@gmail.com".into()));
        assert_eq!(normalise_email("john.doe@googlemail.com"), Some("johndoe@gmail.com".into()));
        assert_eq!(normalise_email("john.doe+x@example.fr"), Some("john.doe@example.fr".into()));
        assert_eq!(normalise_email("nobody"), None);
        assert_eq!(normalise_email("+x@example.fr"), None);
        assert_eq!(normalise_email("a@localhost"), None);
        assert_eq!(normalise_email("Ann Lee <ann@example.fr>"), None);
        assert_eq!(normalise_email("ann lee@example.fr"), None);
        assert_eq!(normalise_email(&format!("{}@example.fr", "a".repeat(250))), None);
    }

    #[test]
    fn hashes_and_states() {
        assert!(valid_hash(&"ab12".repeat(8)));
        assert!(!valid_hash("abc"));
        assert!(!valid_hash(&"zz".repeat(10)));
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(reward::on_void(reward::HELD), Some(reward::CANCELLED));
        assert_eq!(reward::on_void(reward::PAID), Some(reward::CLAWBACK_DUE));
        assert_eq!(reward::on_void(reward::PAYING), Some(reward::CLAWBACK_DUE));
        assert_eq!(reward::on_void(reward::CLAWED_BACK), None);
        assert_eq!(reward::on_paid(reward::PAYING), Some(reward::PAID));
        assert_eq!(reward::on_paid(reward::CANCELLED), Some(reward::CLAWBACK_DUE));
        assert_eq!(reward::on_paid(reward::CLAWBACK_DUE), Some(reward::CLAWBACK_DUE));
        assert_eq!(reward::on_paid(reward::CLAWED_BACK), None);
    }
}
