//! `GET /v1/plugins/{id}/lag`: how far the plugin's workers are behind on `plugin.<id>.events`, from the
//! offsets their consumer group (`topics.plugin_group_template`, `switchyard-plugin-<id>` by default)
//! committed and each partition's end ([`switchyard_service::kafka::group_lag`], the one reader of a
//! group's lag).
//!
//! ```text
//!   role (403: the plugin itself or an admin) · plugin (404) ── PluginQueues::run ── group_lag(group, topic)
//!     ──► {group, topic, partitions: [{partition, committed, end, lag}], total_lag}
//! ```

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use switchyard_service::kafka::{PartitionLag, group_lag};

use crate::api::AppState;
use crate::api::dead_letters::authorize_plugin;
use crate::api::teams::plugin;
use crate::auth::Principal;
use crate::problem::Problem;

/// One partition of the plugin's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    /// The partition.
    pub partition: i32,
    /// The offset the group committed (the next record its workers read); `None` when it committed none.
    pub committed: Option<i64>,
    /// The partition's end: its last stable offset.
    pub end: i64,
    /// Records from the group's position to the end.
    pub lag: i64,
}

/// The workers' lag on the plugin's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagView {
    /// The consumer group.
    pub group: String,
    /// The plugin's events topic.
    pub topic: String,
    /// Each partition, in order; none when the topic does not exist.
    pub partitions: Vec<PartitionView>,
    /// The sum of the partitions' lags.
    pub total_lag: i64,
}

impl LagView {
    /// The view of `partitions` read for `group` on `topic`.
    pub fn of(group: String, topic: String, partitions: Vec<PartitionLag>) -> Self {
        let partitions: Vec<PartitionView> = partitions
            .into_iter()
            .map(|p| PartitionView {
                partition: p.partition,
                committed: p.committed,
                end: p.end,
                lag: p.lag,
            })
            .collect();
        Self {
            group,
            topic,
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
        }
    }
}

/// The plugin workers' consumer lag (the plugin itself or an admin).
pub async fn show(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LagView>, Problem> {
    authorize_plugin(&principal, &id)?;
    plugin(&state, &id)?;
    let queues = &state.plugin_queues;
    let (group, topic) = (queues.group(&id), queues.events_topic(&id));
    let (job_group, job_topic) = (group.clone(), topic.clone());
    let read = queues
        .run(move |clients, timeout| group_lag(clients, "plugin-lag", &job_group, &job_topic, timeout))
        .await;
    let partitions = match read {
        Ok(Ok(partitions)) => partitions,
        Ok(Err(error)) => return Err(unavailable(&error, &id)),
        Err(error) => return Err(unavailable(&error, &id)),
    };
    Ok(Json(LagView::of(group, topic, partitions)))
}

fn unavailable(error: &dyn std::fmt::Display, plugin: &str) -> Problem {
    tracing::warn!(%error, plugin, "reading the plugin workers' lag failed");
    Problem::unavailable(format!(
        "the consumer lag of {plugin}'s workers could not be read; retry"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_the_sum_of_the_partitions() {
        let partition = |partition, committed, end| PartitionLag {
            partition,
            committed,
            low: 0,
            end,
            lag: switchyard_service::kafka::partition_lag(committed, 0, end),
        };
        let view = LagView::of(
            "switchyard-plugin-p".to_owned(),
            "plugin.p.events".to_owned(),
            vec![partition(0, Some(3), 5), partition(1, None, 4)],
        );
        assert_eq!(view.total_lag, 6);
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            serde_json::json!({"group": "switchyard-plugin-p", "topic": "plugin.p.events", "partitions": [
                {"partition": 0, "committed": 3, "end": 5, "lag": 2},
                {"partition": 1, "committed": null, "end": 4, "lag": 4}], "total_lag": 6})
        );
    }
}
