//! Loyalty rules, pure: no IO, no wire format, no database. `store/` loads state, asks these functions what
//! to do, and persists the answer.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Micro-units in one currency unit.
pub const MICROS: i64 = 1_000_000;
/// The largest points amount one call may move.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// A loyalty tier, from the entry tier up to VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Entry tier.
    Bronze,
    /// Second tier.
    Silver,
    /// Third tier.
    Gold,
    /// Top tier.
    Vip,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Bronze, Tier::Silver, Tier::Gold, Tier::Vip];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Bronze => "bronze",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Vip => "vip",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The tier above, if any.
    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::Bronze => Some(Tier::Silver),
            Tier::Silver => Some(Tier::Gold),
            Tier::Gold => Some(Tier::Vip),
            Tier::Vip => None,
        }
    }
}

/// What a tier needs and gives.
#[derive(Debug, Clone, Copy)]
pub struct TierRule {
    /// Qualifying points over 12 months to hold it.
    pub threshold: i64,
    /// Points multiplier on purchases, in percent (100 = ×1).
    pub multiplier_pct: i64,
    /// Price discount, in basis points.
    pub discount_bps: i64,
}

/// The programme's rules (configurable; see `app.rs`).
#[derive(Debug, Clone)]
pub struct Rules {
    /// Days a lot of points stays valid after it becomes available (rolling validity per lot).
    pub validity_days: i64,
    /// Days purchase points stay pending (the returns window).
    pub pending_days: i64,
    /// Points per whole currency unit spent.
    pub points_per_unit: i64,
    /// Orders below this (micro-units) earn nothing.
    pub min_order_micros: i64,
    /// The programme currency.
    pub currency: String,
    /// Extra points on recurring purchases, in percent.
    pub recurring_bonus_pct: i64,
    /// Price discount on recurring purchases, in basis points.
    pub recurring_discount_bps: i64,
    /// Rules of Bronze, Silver, Gold, VIP.
    pub tiers: [TierRule; 4],
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            validity_days: 365,
            pending_days: 14,
            points_per_unit: 1,
            min_order_micros: 5 * MICROS,
            currency: "EUR".into(),
            recurring_bonus_pct: 10,
            recurring_discount_bps: 500,
            tiers: [
                TierRule { threshold: 0, multiplier_pct: 100, discount_bps: 0 },
                TierRule { threshold: 1_000, multiplier_pct: 125, discount_bps: 200 },
                TierRule { threshold: 5_000, multiplier_pct: 150, discount_bps: 500 },
                TierRule { threshold: 20_000, multiplier_pct: 200, discount_bps: 1_000 },
            ],
        }
    }
}

impl Rules {
    /// The rule of `tier`.
    pub fn tier(&self, tier: Tier) -> TierRule {
        self.tiers[tier as usize]
    }

    /// The highest tier `qualifying` points reach.
    pub fn tier_for(&self, qualifying: i64) -> Tier {
        Tier::ALL.into_iter().rev().find(|t| qualifying >= self.tier(*t).threshold).unwrap_or(Tier::Bronze)
    }

    /// The next tier up and the qualifying points still missing for it.
    pub fn progress(&self, tier: Tier, qualifying: i64) -> Option<(Tier, i64)> {
        let next = tier.next()?;
        Some((next, (self.tier(next).threshold - qualifying).max(0)))
    }

    /// Qualifying points still missing to keep `tier` at the end of its period, given the points that will still
    /// qualify then (`at_end`); 0 when the tier is secured. Above 0 the tier drops at period end unless more is earned.
    pub fn points_to_keep(&self, tier: Tier, at_end: i64) -> i64 {
        (self.tier(tier).threshold - at_end).max(0)
    }

    /// Points a purchase earns, and how.
    pub fn purchase_points(&self, tier: Tier, amount_micros: i64, recurring: bool) -> (i64, String) {
        if amount_micros < self.min_order_micros {
            return (0, format!("below the minimum order value of {}", fmt_micros(self.min_order_micros)));
        }
        let rule = self.tier(tier);
        let bonus = if recurring { self.recurring_bonus_pct } else { 0 };
        let points = i128::from(amount_micros)
            * i128::from(self.points_per_unit)
            * i128::from(rule.multiplier_pct)
            * i128::from(100 + bonus)
            / (i128::from(MICROS) * 100 * 100);
        let points = i64::try_from(points).unwrap_or(MAX_POINTS).min(MAX_POINTS);
        let mut why = format!(
            "{} × {} point(s) per unit × {} tier {}%",
            fmt_micros(amount_micros),
            self.points_per_unit,
            tier.as_str(),
            rule.multiplier_pct
        );
        if recurring {
            why.push_str(&format!(" × recurring bonus {}%", 100 + bonus));
        }
        (points, why)
    }
}

/// Formats micro-units as a decimal amount with two places.
pub fn fmt_micros(micros: i64) -> String {
    let cents = micros / 10_000;
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

/// A lot of points: credited together, valid together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lot {
    /// Lot id.
    pub id: i64,
    /// Points left in it.
    pub remaining: i64,
    /// When it becomes spendable.
    pub available_at: i64,
    /// When it expires.
    pub expires_at: i64,
}

/// The member's points by state at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Spendable now.
    pub active: i64,
    /// Not yet spendable.
    pub pending: i64,
    /// Spent over the membership.
    pub spent: i64,
    /// Expired over the membership.
    pub expired: i64,
    /// Active points expiring within 30 days.
    pub expiring_soon: i64,
}

/// Active and pending points of `lots` at `now` (lots already settled: none past expiry with points left).
pub fn balance(lots: &[Lot], now: i64, spent: i64, expired: i64) -> Balance {
    let mut b = Balance { spent, expired, ..Balance::default() };
    for lot in lots.iter().filter(|l| l.remaining > 0 && l.expires_at > now) {
        if lot.available_at <= now {
            b.active += lot.remaining;
            if lot.expires_at <= now + 30 * DAY_MS {
                b.expiring_soon += lot.remaining;
            }
        } else {
            b.pending += lot.remaining;
        }
    }
    b
}

/// Qualifying points of the rolling 12 months ending `at`, from (created at, qualifying points) entries; never
/// below zero (reversals can outweigh what is left in the window).
pub fn qualifying(entries: &[(i64, i64)], at: i64) -> i64 {
    entries.iter().filter(|(created, _)| *created > at - 365 * DAY_MS).map(|(_, q)| q).sum::<i64>().max(0)
}

/// Lots whose points have expired at `now`, with the points to write off.
pub fn expired_lots(lots: &[Lot], now: i64) -> Vec<(i64, i64)> {
    lots.iter().filter(|l| l.remaining > 0 && l.expires_at <= now).map(|l| (l.id, l.remaining)).collect()
}

/// Not enough active points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insufficient {
    /// Active points there are.
    pub available: i64,
}

/// Takes `points` from the active lots, the soonest-expiring first. Returns (lot id, points taken).
pub fn allocate(lots: &[Lot], points: i64, now: i64) -> Result<Vec<(i64, i64)>, Insufficient> {
    let mut active: Vec<&Lot> =
        lots.iter().filter(|l| l.remaining > 0 && l.available_at <= now && l.expires_at > now).collect();
    active.sort_by_key(|l| (l.expires_at, l.id));
    let available: i64 = active.iter().map(|l| l.remaining).sum();
    if available < points {
        return Err(Insufficient { available });
    }
    let mut left = points;
    let mut takes = Vec::new();
    for lot in active {
        if left == 0 {
            break;
        }
        let take = lot.remaining.min(left);
        takes.push((lot.id, take));
        left -= take;
    }
    Ok(takes)
}

/// Takes `points` back for a reversal: first from the credited lot itself (pending or active), then from other
/// active lots. Returns (lot id, points taken).
pub fn allocate_reversal(
    lots: &[Lot],
    own_lot: Option<i64>,
    points: i64,
    now: i64,
) -> Result<Vec<(i64, i64)>, Insufficient> {
    let own = own_lot.and_then(|id| lots.iter().find(|l| l.id == id && l.remaining > 0 && l.expires_at > now));
    let from_own = own.map_or(0, |l| l.remaining.min(points));
    let others: Vec<Lot> = lots.iter().filter(|l| Some(l.id) != own.map(|o| o.id)).copied().collect();
    let mut takes =
        allocate(&others, points - from_own, now).map_err(|i| Insufficient { available: i.available + from_own })?;
    if let (Some(l), true) = (own, from_own > 0) {
        takes.insert(0, (l.id, from_own));
    }
    Ok(takes)
}

/// A tier change decided by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierChange {
    /// New tier.
    pub to: Tier,
    /// "qualified" or "period_end".
    pub reason: &'static str,
}

/// After points were earned: an upgrade, at once, when the qualifying points reach a higher tier.
pub fn upgrade(rules: &Rules, current: Tier, qualifying: i64) -> Option<TierChange> {
    let q = rules.tier_for(qualifying);
    (q > current).then_some(TierChange { to: q, reason: "qualified" })
}

/// At the end of a tier period: a downgrade to the tier the qualifying points still hold (never an upgrade: that
/// happens at once). Returns the change, if any, and the end of the next period.
pub fn period_end(
    rules: &Rules,
    current: Tier,
    qualifying: i64,
    period_end: i64,
    now: i64,
) -> (Option<TierChange>, i64) {
    if now < period_end {
        return (None, period_end);
    }
    let mut next_end = period_end;
    while next_end <= now {
        next_end += 365 * DAY_MS;
    }
    let q = rules.tier_for(qualifying);
    let change = (q < current).then_some(TierChange { to: q, reason: "period_end" });
    (change, next_end)
}

/// What an offer gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    /// Basis points off.
    PercentOff,
    /// Cents off.
    AmountOff,
}

/// An offer usable in a quote.
#[derive(Debug, Clone)]
pub struct UsableOffer {
    /// Offer id.
    pub offer_id: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: OfferKind,
    /// Basis points or cents.
    pub value: i64,
}

/// One step of a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// tier_discount, recurring_price or offer.
    pub kind: &'static str,
    /// Why.
    pub description: String,
    /// Micro-units off.
    pub amount_off: i64,
    /// The offer, for kind offer.
    pub offer_id: String,
}

/// A personalised price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Micro-units to pay.
    pub price: i64,
    /// The steps.
    pub adjustments: Vec<Adjustment>,
}

fn round_cents(micros: i64) -> i64 {
    // Half up, on whole cents.
    (micros + 5_000).div_euclid(10_000) * 10_000
}

fn bps_off(price: i64, bps: i64) -> i64 {
    round_cents(i64::try_from(i128::from(price) * i128::from(bps) / 10_000).unwrap_or(price)).min(price)
}

/// The personalised price: tier discount, then the recurring-purchase price, then the best offer.
pub fn quote(rules: &Rules, base: i64, tier: Tier, recurring: bool, offers: &[UsableOffer]) -> Quote {
    let mut price = base;
    let mut adjustments = Vec::new();
    let tier_bps = rules.tier(tier).discount_bps;
    if tier_bps > 0 {
        let off = bps_off(price, tier_bps);
        price -= off;
        adjustments.push(Adjustment {
            kind: "tier_discount",
            description: format!("{} tier: {} % off", tier.as_str(), fmt_bps(tier_bps)),
            amount_off: off,
            offer_id: String::new(),
        });
    }
    if recurring && rules.recurring_discount_bps > 0 {
        let off = bps_off(price, rules.recurring_discount_bps);
        price -= off;
        adjustments.push(Adjustment {
            kind: "recurring_price",
            description: format!("recurring purchase: {} % off", fmt_bps(rules.recurring_discount_bps)),
            amount_off: off,
            offer_id: String::new(),
        });
    }
    let best = offers
        .iter()
        .map(|o| {
            let off = match o.kind {
                OfferKind::PercentOff => bps_off(price, o.value),
                OfferKind::AmountOff => (o.value.saturating_mul(10_000)).min(price),
            };
            (off, o)
        })
        .filter(|(off, _)| *off > 0)
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.offer_id.cmp(&a.1.offer_id)));
    if let Some((off, o)) = best {
        price -= off;
        adjustments.push(Adjustment {
            kind: "offer",
            description: format!("offer {:?}: {} off", o.title, fmt_micros(off)),
            amount_off: off,
            offer_id: o.offer_id.clone(),
        });
    }
    Quote { price: price.max(0), adjustments }
}

fn fmt_bps(bps: i64) -> String {
    if bps % 100 == 0 { format!("{}", bps / 100) } else { format!("{}.{:02}", bps / 100, bps % 100) }
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Customer id.
    pub customer_id: String,
    /// Display name, if any.
    pub display_name: Option<String>,
    /// Tier.
    pub tier: Tier,
    /// Balance.
    pub balance: Balance,
    /// Qualifying points over 12 months.
    pub qualifying: i64,
    /// Next tier and points missing.
    pub progress: Option<(Tier, i64)>,
    /// Qualifying points missing to keep the tier at period end, counting only what will still qualify then (0:
    /// secured).
    pub to_keep: i64,
    /// End of the tier period.
    pub tier_period_end: i64,
    /// Enrolment time.
    pub enrolled_at: i64,
}

/// The kind of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// EarnPoints.
    Earn,
    /// RecordPurchase.
    Purchase,
    /// RedeemPoints.
    Redeem,
    /// AdjustPoints.
    Adjust,
    /// ReversePoints.
    Reverse,
    /// Transfer credit.
    TransferIn,
    /// Transfer debit.
    TransferOut,
    /// Expiry.
    Expire,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 8] = [
        EntryKind::Earn,
        EntryKind::Purchase,
        EntryKind::Redeem,
        EntryKind::Adjust,
        EntryKind::Reverse,
        EntryKind::TransferIn,
        EntryKind::TransferOut,
        EntryKind::Expire,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earn => "earn",
            EntryKind::Purchase => "purchase",
            EntryKind::Redeem => "redeem",
            EntryKind::Adjust => "adjust",
            EntryKind::Reverse => "reverse",
            EntryKind::TransferIn => "transfer_in",
            EntryKind::TransferOut => "transfer_out",
            EntryKind::Expire => "expire",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a reversal may undo it.
    pub fn reversible(self) -> bool {
        matches!(self, EntryKind::Earn | EntryKind::Purchase | EntryKind::Redeem)
    }
}

/// One ledger line as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// Entry id.
    pub id: i64,
    /// Member (or anonymous id).
    pub customer_id: String,
    /// Kind.
    pub kind: EntryKind,
    /// Signed change of the total.
    pub points: i64,
    /// Why.
    pub reason: String,
    /// External reference.
    pub reference: String,
    /// Reversed entry.
    pub reverses_entry_id: Option<i64>,
    /// Transfer counterparty.
    pub counterparty: Option<String>,
    /// Written at.
    pub created_at: i64,
    /// Credits: spendable from.
    pub available_at: Option<i64>,
    /// Credits: expiry.
    pub expires_at: Option<i64>,
}

/// An offer's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferTerms {
    /// Offer id.
    pub offer_id: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: OfferKind,
    /// Basis points or cents.
    pub value: i64,
    /// SKU, empty for any.
    pub sku: String,
    /// Eligible tiers, empty for all.
    pub tiers: Vec<Tier>,
    /// Validity start.
    pub start_at: i64,
    /// Validity end.
    pub end_at: i64,
    /// Uses per customer.
    pub max_uses: i32,
}

impl OfferTerms {
    /// Whether `tier` may receive it.
    pub fn eligible(&self, tier: Tier) -> bool {
        self.tiers.is_empty() || self.tiers.contains(&tier)
    }
    /// Whether it is valid at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.start_at <= now && now < self.end_at
    }
    /// Whether it applies to `sku`.
    pub fn applies_to(&self, sku: &str) -> bool {
        self.sku.is_empty() || self.sku == sku
    }
}

/// An offer held by a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOffer {
    /// Terms.
    pub terms: OfferTerms,
    /// Granting campaign (the first, when several granted it).
    pub campaign_id: String,
    /// Uses left.
    pub uses_left: i32,
    /// First grant time.
    pub granted_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(id: i64, remaining: i64, available_at: i64, expires_at: i64) -> Lot {
        Lot { id, remaining, available_at, expires_at }
    }

    #[test]
    fn qualifying_points_are_those_of_the_twelve_months_before() {
        let year = 365 * DAY_MS;
        let entries = [(10 * DAY_MS, 100), (200 * DAY_MS, 50), (300 * DAY_MS, -20)];
        assert_eq!(qualifying(&entries, 300 * DAY_MS), 130);
        // 10 days into the next year: the first entry has left the window (the bound is exclusive).
        assert_eq!(qualifying(&entries, year + 10 * DAY_MS), 30);
        assert_eq!(qualifying(&entries, year + 300 * DAY_MS), 0);
        assert_eq!(qualifying(&[(0, -5)], 0), 0, "never below zero");
    }

    #[test]
    fn redemption_takes_soonest_expiry_first() {
        let lots = [lot(1, 50, 0, 300), lot(2, 30, 0, 100), lot(3, 100, 500, 900)];
        assert_eq!(allocate(&lots, 40, 10).unwrap(), vec![(2, 30), (1, 10)]);
        assert_eq!(allocate(&lots, 81, 10).unwrap_err(), Insufficient { available: 80 });
        // after lot 2 expired it is not spendable
        assert_eq!(allocate(&lots, 60, 200).unwrap_err(), Insufficient { available: 50 });
    }

    #[test]
    fn balance_splits_active_pending_and_soon_expiring() {
        let lots = [lot(1, 50, 0, 10 * DAY_MS), lot(2, 30, 0, 100 * DAY_MS), lot(3, 100, 5 * DAY_MS, 900 * DAY_MS)];
        let b = balance(&lots, DAY_MS, 7, 3);
        assert_eq!(b, Balance { active: 80, pending: 100, spent: 7, expired: 3, expiring_soon: 50 });
        assert_eq!(expired_lots(&lots, 10 * DAY_MS), vec![(1, 50)]);
    }

    #[test]
    fn reversal_takes_from_its_own_lot_first() {
        let lots = [lot(1, 50, 0, 300), lot(2, 30, 500, 900)];
        assert_eq!(allocate_reversal(&lots, Some(2), 40, 10).unwrap(), vec![(2, 30), (1, 10)]);
        assert_eq!(allocate_reversal(&lots, Some(2), 90, 10).unwrap_err(), Insufficient { available: 80 });
    }

    #[test]
    fn purchase_points_apply_minimum_multiplier_and_bonus() {
        let r = Rules::default();
        assert_eq!(r.purchase_points(Tier::Bronze, 4 * MICROS, false).0, 0);
        assert_eq!(r.purchase_points(Tier::Bronze, 100 * MICROS + 990_000, false).0, 100);
        assert_eq!(r.purchase_points(Tier::Gold, 100 * MICROS, false).0, 150);
        assert_eq!(r.purchase_points(Tier::Gold, 100 * MICROS, true).0, 165);
    }

    #[test]
    fn tiers_upgrade_at_once_and_downgrade_at_period_end() {
        let r = Rules::default();
        assert_eq!(r.tier_for(999), Tier::Bronze);
        assert_eq!(r.tier_for(20_000), Tier::Vip);
        assert_eq!(upgrade(&r, Tier::Bronze, 5_000), Some(TierChange { to: Tier::Gold, reason: "qualified" }));
        assert_eq!(upgrade(&r, Tier::Gold, 1_000), None);
        assert_eq!(period_end(&r, Tier::Gold, 1_000, 100, 50), (None, 100));
        let (c, next) = period_end(&r, Tier::Gold, 1_000, 100, 100);
        assert_eq!(c, Some(TierChange { to: Tier::Silver, reason: "period_end" }));
        assert_eq!(next, 100 + 365 * DAY_MS);
        assert_eq!(r.progress(Tier::Silver, 1_200), Some((Tier::Gold, 3_800)));
        assert_eq!(r.progress(Tier::Vip, 1), None);
        assert_eq!(r.points_to_keep(Tier::Vip, 20_000), 0);
        assert_eq!(r.points_to_keep(Tier::Vip, 19_000), 1_000);
        assert_eq!(r.points_to_keep(Tier::Bronze, 0), 0);
    }

    #[test]
    fn quote_applies_tier_recurring_and_best_offer() {
        let r = Rules::default();
        let offers = [
            UsableOffer { offer_id: "pct".into(), title: "10".into(), kind: OfferKind::PercentOff, value: 1_000 },
            UsableOffer { offer_id: "amt".into(), title: "5".into(), kind: OfferKind::AmountOff, value: 500 },
        ];
        let q = quote(&r, 100 * MICROS, Tier::Gold, true, &offers);
        // 100 → gold 5 % → 95 → recurring 5 % (4.75) → 90.25 → best: 10 % (9.03) beats 5.00 → 81.22
        assert_eq!(
            q.adjustments.iter().map(|a| a.amount_off).collect::<Vec<_>>(),
            vec![5_000_000, 4_750_000, 9_030_000]
        );
        assert_eq!(q.price, 81_220_000);
        assert_eq!(q.adjustments[2].offer_id, "pct");
        let q = quote(&r, 3 * MICROS, Tier::Bronze, false, &offers[1..]);
        assert_eq!(q.price, 0);
    }
}
