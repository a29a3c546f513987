//! Routing of cases: queues, agents and the ordered rules, and the assignment of cases to agents within capacity.
//! Intake only routes (a case waits in its queue); the assigner (a leased worker woken after each commit) gives
//! waiting cases to agents, so intake never waits on a queue. Locks, always in this order so that no two
//! transactions wait on each other: the queue rows (sorted), then the agent rows (sorted) — an assignment counts an
//! agent's open cases only while holding both, so two replicas never give one agent more than its capacity.
use std::collections::{BTreeSet, HashMap};

use rapport_kit::{
    audit::{Actor, Entry},
    frame::{Done, Key},
};
use rapport_proto::feedback::v1 as pb;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use super::{Result, Store};
use crate::{
    domain::{
        cases::OPEN,
        routing::{self, Assignment, Candidate, Rule},
    },
    entities::{agent_queues, agents, cases, queues, routing_rules, surveys},
    error::FeedbackError,
    wire,
};

/// A queue to add or replace.
#[derive(Debug, Clone)]
pub struct QueueCmd {
    /// Id.
    pub queue_id: String,
    /// Name for people.
    pub display_name: String,
    /// How it assigns.
    pub assignment: Assignment,
}

/// An agent to add or replace.
#[derive(Debug, Clone)]
pub struct AgentCmd {
    /// Id.
    pub agent_id: String,
    /// Queues it serves.
    pub queue_ids: Vec<String>,
    /// Most open cases.
    pub capacity: i32,
    /// Takes cases.
    pub online: bool,
}

fn assignment_pb(a: &str) -> pb::Assignment {
    match Assignment::parse(a) {
        Assignment::RoundRobin => pb::Assignment::RoundRobin,
        Assignment::LeastLoaded => pb::Assignment::LeastLoaded,
    }
}

/// Open cases held, per agent.
async fn open_per_agent<C: ConnectionTrait>(conn: &C, agent_ids: Vec<String>) -> Result<HashMap<String, i64>> {
    if agent_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Option<String>, i64)> = cases::Entity::find()
        .select_only()
        .column(cases::Column::AssignedAgent)
        .column_as(cases::Column::Seq.count(), "n")
        .filter(cases::Column::State.eq(OPEN))
        .filter(cases::Column::AssignedAgent.is_in(agent_ids))
        .group_by(cases::Column::AssignedAgent)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|(a, n)| a.map(|a| (a, n))).collect())
}

/// Locks the queues (sorted) so that assignments in them wait; unknown ids are refused.
async fn lock_queues(txn: &DatabaseTransaction, ids: &BTreeSet<String>) -> Result<Vec<queues::Model>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let q = queues::Entity::find_by_id(id.clone())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or_else(|| FeedbackError::QueueNotFound(id.clone()))?;
        out.push(q);
    }
    Ok(out)
}

impl Store {
    /// The agent to give a new case of `queue_id` to, if one has room; the caller holds the queue's lock.
    pub(super) async fn assign_in(&self, txn: &DatabaseTransaction, queue: &queues::Model) -> Result<Option<String>> {
        let ids: Vec<String> = agent_queues::Entity::find()
            .select_only()
            .column(agent_queues::Column::AgentId)
            .filter(agent_queues::Column::QueueId.eq(queue.queue_id.as_str()))
            .into_tuple()
            .all(txn)
            .await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let online = agents::Entity::find()
            .filter(agents::Column::AgentId.is_in(ids))
            .filter(agents::Column::Online.eq(true))
            .order_by_asc(agents::Column::AgentId)
            .lock_exclusive()
            .all(txn)
            .await?;
        let open = open_per_agent(txn, online.iter().map(|a| a.agent_id.clone()).collect()).await?;
        let candidates: Vec<Candidate> = online
            .iter()
            .map(|a| Candidate {
                agent_id: a.agent_id.clone(),
                open: open.get(&a.agent_id).copied().unwrap_or(0),
                capacity: i64::from(a.capacity),
            })
            .collect();
        let chosen = routing::pick(Assignment::parse(&queue.assignment), &candidates, queue.last_agent.as_deref())
            .map(str::to_string);
        if let Some(agent) = &chosen {
            queues::Entity::update_many()
                .col_expr(queues::Column::LastAgent, Expr::value(agent.clone()))
                .filter(queues::Column::QueueId.eq(queue.queue_id.as_str()))
                .exec(txn)
                .await?;
        }
        Ok(chosen)
    }

    /// The queue and rule that route a case with `facts` (no lock: rules only name existing queues).
    pub(super) async fn route_in(&self, txn: &DatabaseTransaction, facts: &routing::Facts) -> Result<(String, String)> {
        let rules = self.rules_in(txn).await?;
        let (queue_id, rule_id) = routing::route(&rules, facts);
        Ok((queue_id.to_string(), rule_id.to_string()))
    }

    /// The customer's last NPS answer, if it has one (0-6: a detractor).
    pub(super) async fn last_score_in(&self, txn: &DatabaseTransaction, customer_id: &str) -> Result<Option<i32>> {
        let last: Option<Option<i32>> = surveys::Entity::find()
            .select_only()
            .column(surveys::Column::Score)
            .filter(surveys::Column::CustomerId.eq(customer_id))
            .filter(surveys::Column::Score.is_not_null())
            .order_by_desc(surveys::Column::AnsweredAt)
            .limit(1)
            .into_tuple()
            .one(txn)
            .await?;
        Ok(last.flatten())
    }

    async fn rules_in<C: ConnectionTrait>(&self, conn: &C) -> Result<Vec<Rule>> {
        let rows = routing_rules::Entity::find().order_by_asc(routing_rules::Column::Position).all(conn).await?;
        rows.iter().map(|r| Ok(serde_json::from_str(&r.spec)?)).collect()
    }

    /// The routing rules, in order.
    pub async fn rules(&self) -> Result<Vec<Rule>> {
        self.rules_in(&self.db).await
    }

    /// Replaces the routing rules.
    pub async fn set_rules(&self, key: &Key, rules: Vec<Rule>) -> Result<pb::SetRoutingRulesResponse> {
        self.frame
            .once(self, key, "SetRoutingRules", move |_, txn, _| {
                Box::pin(async move {
                    // One change of the rules at a time (each rewrites every position).
                    rapport_kit::lease::lock_in_txn(txn, "feedback.routing-rules").await?;
                    let ids: BTreeSet<String> = rules.iter().map(|r| r.queue_id.clone()).collect();
                    lock_queues(txn, &ids).await?;
                    routing_rules::Entity::delete_many().exec(txn).await?;
                    for (i, r) in rules.iter().enumerate() {
                        let row = routing_rules::ActiveModel {
                            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
                            spec: Set(serde_json::to_string(r)?),
                        };
                        routing_rules::Entity::insert(row).exec_without_returning(txn).await?;
                    }
                    tracing::info!(rules = rules.len(), "routing rules replaced");
                    Ok(Done::reply(pb::SetRoutingRulesResponse { rules: rules.iter().map(wire::rule_pb).collect() }))
                })
            })
            .await
    }

    /// Adds or replaces a queue.
    pub async fn put_queue(&self, key: &Key, q: QueueCmd) -> Result<pb::PutQueueResponse> {
        self.frame
            .once(self, key, "PutQueue", move |_, txn, _| {
                Box::pin(async move {
                    let row = queues::ActiveModel {
                        queue_id: Set(q.queue_id.clone()),
                        display_name: Set(q.display_name.clone()),
                        assignment: Set(q.assignment.as_str().into()),
                        last_agent: Set(None),
                    };
                    queues::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(queues::Column::QueueId)
                                .update_columns([queues::Column::DisplayName, queues::Column::Assignment])
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    tracing::info!(queue_id = %q.queue_id, "queue saved");
                    Ok(Done::reply(pb::PutQueueResponse {
                        queue: Some(pb::Queue {
                            queue_id: q.queue_id,
                            display_name: q.display_name,
                            assignment: assignment_pb(q.assignment.as_str()).into(),
                            ..Default::default()
                        }),
                    }))
                })
            })
            .await
    }

    /// Queues (with open and unassigned cases and their agents) and agents (with their open cases).
    pub async fn queues(&self) -> Result<pb::ListQueuesResponse> {
        let qs = queues::Entity::find().order_by_asc(queues::Column::QueueId).all(&self.db).await?;
        let memberships = agent_queues::Entity::find().all(&self.db).await?;
        let all_agents = agents::Entity::find().order_by_asc(agents::Column::AgentId).all(&self.db).await?;
        let counts: Vec<(String, Option<String>, i64)> = cases::Entity::find()
            .select_only()
            .column(cases::Column::QueueId)
            .column(cases::Column::AssignedAgent)
            .column_as(cases::Column::Seq.count(), "n")
            .filter(cases::Column::State.eq(OPEN))
            .group_by(cases::Column::QueueId)
            .group_by(cases::Column::AssignedAgent)
            .into_tuple()
            .all(&self.db)
            .await?;
        let n32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        let queues = qs
            .iter()
            .map(|q| {
                let of_queue = counts.iter().filter(|(id, _, _)| *id == q.queue_id);
                pb::Queue {
                    queue_id: q.queue_id.clone(),
                    display_name: q.display_name.clone(),
                    assignment: assignment_pb(&q.assignment).into(),
                    open_cases: n32(of_queue.clone().map(|(_, _, n)| n).sum()),
                    unassigned_cases: n32(of_queue.filter(|(_, a, _)| a.is_none()).map(|(_, _, n)| n).sum()),
                    agent_ids: memberships
                        .iter()
                        .filter(|m| m.queue_id == q.queue_id)
                        .map(|m| m.agent_id.clone())
                        .collect(),
                }
            })
            .collect();
        let agents = all_agents
            .iter()
            .map(|a| pb::Agent {
                agent_id: a.agent_id.clone(),
                queue_ids: memberships
                    .iter()
                    .filter(|m| m.agent_id == a.agent_id)
                    .map(|m| m.queue_id.clone())
                    .collect(),
                capacity: a.capacity,
                online: a.online,
                open_cases: n32(counts
                    .iter()
                    .filter(|(_, ag, _)| ag.as_deref() == Some(a.agent_id.as_str()))
                    .map(|(_, _, n)| n)
                    .sum()),
            })
            .collect();
        Ok(pb::ListQueuesResponse { queues, agents })
    }

    /// Adds or replaces an agent; an agent going offline hands its open cases on.
    pub async fn put_agent(&self, key: &Key, a: AgentCmd) -> Result<pb::PutAgentResponse> {
        self.frame
            .once(self, key, "PutAgent", move |s, txn, _| {
                Box::pin(async move {
                    let wanted: BTreeSet<String> = a.queue_ids.iter().cloned().collect();
                    let before: BTreeSet<String> = s.queues_of(txn, &a.agent_id).await?.into_iter().collect();
                    lock_queues(txn, &wanted.union(&before).cloned().collect()).await?;
                    let row = agents::ActiveModel {
                        agent_id: Set(a.agent_id.clone()),
                        capacity: Set(a.capacity),
                        online: Set(a.online),
                    };
                    agents::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(agents::Column::AgentId)
                                .update_columns([agents::Column::Capacity, agents::Column::Online])
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    agent_queues::Entity::delete_many()
                        .filter(agent_queues::Column::AgentId.eq(a.agent_id.as_str()))
                        .exec(txn)
                        .await?;
                    for q in &wanted {
                        let m =
                            agent_queues::ActiveModel { agent_id: Set(a.agent_id.clone()), queue_id: Set(q.clone()) };
                        agent_queues::Entity::insert(m).exec_without_returning(txn).await?;
                    }
                    let handed_back = if a.online { 0 } else { s.hand_on(txn, &a.agent_id).await? };
                    tracing::info!(agent_id = %a.agent_id, online = a.online, handed_back, "agent saved");
                    let agent = s.agent_reply(txn, &a.agent_id, handed_back).await?.agent;
                    Ok(Done::reply(pb::PutAgentResponse { agent }).on("agent", &a.agent_id))
                })
            })
            .await
    }

    /// Brings an agent online or offline; offline, its open cases go to the other agents of their queues.
    pub async fn set_agent_online(
        &self,
        key: &Key,
        agent_id: &str,
        online: bool,
    ) -> Result<pb::SetAgentOnlineResponse> {
        let agent_id = agent_id.to_string();
        self.frame
            .once(self, key, "SetAgentOnline", move |s, txn, _| {
                Box::pin(async move {
                    let served: BTreeSet<String> = s.queues_of(txn, &agent_id).await?.into_iter().collect();
                    lock_queues(txn, &served).await?;
                    let n = agents::Entity::update_many()
                        .col_expr(agents::Column::Online, Expr::value(online))
                        .filter(agents::Column::AgentId.eq(agent_id.as_str()))
                        .exec(txn)
                        .await?
                        .rows_affected;
                    if n == 0 {
                        return Err(FeedbackError::AgentNotFound);
                    }
                    let handed_back = if online { 0 } else { s.hand_on(txn, &agent_id).await? };
                    tracing::info!(agent_id = %agent_id, online, handed_back, "agent availability changed");
                    Ok(Done::reply(s.agent_reply(txn, &agent_id, handed_back).await?).on("agent", &agent_id))
                })
            })
            .await
    }

    /// Gives waiting (unassigned) open cases to agents with room, oldest first, queue by queue, at most 100 per
    /// queue: new cases, and those waiting until an agent came back online or a resolution made room. The
    /// assigner worker runs it on one replica at a time, woken by every commit. Returns how many were assigned.
    pub async fn assign_waiting(&self) -> Result<usize> {
        let waiting: Vec<String> = cases::Entity::find()
            .select_only()
            .column(cases::Column::QueueId)
            .filter(cases::Column::State.eq(OPEN))
            .filter(cases::Column::AssignedAgent.is_null())
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut assigned = 0;
        for queue_id in waiting {
            let _turn = self.frame.write_turn().await;
            let txn = rapport_kit::db::begin_write(&self.db).await?;
            let now = self.frame.now_ms();
            let queue = lock_queues(&txn, &BTreeSet::from([queue_id.clone()])).await?.remove(0);
            let cases_waiting = cases::Entity::find()
                .filter(cases::Column::QueueId.eq(queue_id.as_str()))
                .filter(cases::Column::State.eq(OPEN))
                .filter(cases::Column::AssignedAgent.is_null())
                .order_by_asc(cases::Column::Seq)
                .limit(100)
                .all(&txn)
                .await?;
            let mut queue = queue;
            for c in cases_waiting {
                let Some(to) = self.assign_in(&txn, &queue).await? else { break };
                // Only if it still waits here: the SLA sweeper may have moved it to the escalation queue (or an
                // erasure taken it) since it was read.
                let done = cases::Entity::update_many()
                    .col_expr(cases::Column::AssignedAgent, Expr::value(to.clone()))
                    .filter(cases::Column::Seq.eq(c.seq))
                    .filter(cases::Column::QueueId.eq(queue_id.as_str()))
                    .filter(cases::Column::State.eq(OPEN))
                    .filter(cases::Column::AssignedAgent.is_null())
                    .exec(&txn)
                    .await?;
                if done.rows_affected == 0 {
                    continue;
                }
                let (target, actor) = (format!("case:{}", c.case_id), Actor::worker("feedback.assigner"));
                let customers = [c.customer_id.clone()];
                let entry =
                    Entry { at_ms: now, method: "AssignCase", actor: &actor, target: &target, customers: &customers };
                self.frame.trail().record(&txn, entry).await?;
                tracing::info!(case_id = %c.case_id, agent_id = %to, "waiting case assigned");
                queue.last_agent = Some(to);
                assigned += 1;
            }
            txn.commit().await?;
        }
        Ok(assigned)
    }

    async fn queues_of(&self, txn: &DatabaseTransaction, agent_id: &str) -> Result<Vec<String>> {
        Ok(agent_queues::Entity::find()
            .select_only()
            .column(agent_queues::Column::QueueId)
            .filter(agent_queues::Column::AgentId.eq(agent_id))
            .into_tuple()
            .all(txn)
            .await?)
    }

    /// Puts the open cases of an agent gone offline back in their queues and wakes the assigner (which locks
    /// queues, then agents, in order: doing it here, queue by queue, would take agent locks out of order). Returns
    /// how many.
    async fn hand_on(&self, txn: &DatabaseTransaction, agent_id: &str) -> Result<i32> {
        let n = cases::Entity::update_many()
            .col_expr(cases::Column::AssignedAgent, Expr::value(Option::<String>::None))
            .filter(cases::Column::AssignedAgent.eq(agent_id))
            .filter(cases::Column::State.eq(OPEN))
            .exec(txn)
            .await?
            .rows_affected;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    async fn agent_reply(
        &self,
        txn: &DatabaseTransaction,
        agent_id: &str,
        handed_back: i32,
    ) -> Result<pb::SetAgentOnlineResponse> {
        let a = agents::Entity::find_by_id(agent_id.to_string()).one(txn).await?.ok_or(FeedbackError::AgentNotFound)?;
        let open = open_per_agent(txn, vec![agent_id.to_string()]).await?;
        Ok(pb::SetAgentOnlineResponse {
            agent: Some(pb::Agent {
                agent_id: a.agent_id.clone(),
                queue_ids: self.queues_of(txn, agent_id).await?,
                capacity: a.capacity,
                online: a.online,
                open_cases: i32::try_from(open.get(agent_id).copied().unwrap_or(0)).unwrap_or(i32::MAX),
            }),
            handed_back,
        })
    }
}
