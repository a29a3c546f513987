//! Feedback's stored surveys in their wire form, for the API's and the store's replies.
use rapport_kit::clock::timestamp;
use rapport_proto::feedback::v1 as pb;

use crate::{
    domain::{NpsClass, QUESTION},
    entities::surveys,
};

/// The wire class of a score.
pub(crate) fn class_pb(score: i32) -> pb::NpsClass {
    match NpsClass::of(score) {
        NpsClass::Promoter => pb::NpsClass::Promoter,
        NpsClass::Passive => pb::NpsClass::Passive,
        NpsClass::Detractor => pb::NpsClass::Detractor,
    }
}

/// A survey row as the API shows it at `now`.
pub(crate) fn survey_pb(s: &surveys::Model, now: i64) -> pb::Survey {
    let state = match (s.score, now >= s.expires_at) {
        (Some(_), _) => pb::SurveyState::Answered,
        (None, true) => pb::SurveyState::Expired,
        (None, false) => pb::SurveyState::Scheduled,
    };
    pb::Survey {
        survey_id: s.survey_id.clone(),
        customer_id: s.customer_id.clone(),
        question: QUESTION.into(),
        touchpoint: s.touchpoint.clone(),
        channel: s.channel,
        state: state.into(),
        create_time: Some(timestamp(s.created_at)),
        expire_time: Some(timestamp(s.expires_at)),
        answer: s.score.map(|score| pb::Answer {
            score,
            class: class_pb(score).into(),
            comment: s.comment.clone().unwrap_or_default(),
            answer_time: s.answered_at.map(timestamp),
        }),
    }
}

/// An NPS with its interval under `key`.
pub(crate) fn nps_pb(key: String, n: &crate::domain::Nps) -> pb::NpsScore {
    let (ci_low, ci_high) = n.interval();
    pb::NpsScore {
        key,
        promoters: n.promoters,
        passives: n.passives,
        detractors: n.detractors,
        responses: n.responses(),
        score: n.score(),
        ci_low,
        ci_high,
    }
}
