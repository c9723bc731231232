//! How the router classifies librdkafka's failures: what to do after a transaction call failed, and
//! whether a failed delivery is the record's fault or the destination's.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How a failed delivery is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The destination refuses this record for a reason of its own (size, permission, missing topic): replay
    /// sends this copy to the dead-letter topic instead.
    RecordSpecific,
    /// Anything else (timeouts, leadership changes, broker down): replay sends it again.
    Transient,
    /// The record was purged by an abort or a rewind; nothing to do.
    Purged,
}

/// What the router does after a transaction call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionAction {
    /// Call it again (librdkafka resumes the same operation), within the ride-out deadline.
    Retry,
    /// Abort the transaction, rewind and process again.
    Abort,
    /// librdkafka declared the producer unusable, for a reason that another producer with the same
    /// transactional id does not inherit (e.g. the broker answering `INVALID_TXN_STATE` to the abort of a
    /// transaction none of whose partitions could be added, librdkafka issue 4849, which a deleted plugin
    /// topic causes): replace the producer, whose `init_transactions` aborts what the old one left open,
    /// then rewind.
    ReplaceProducer,
    /// Stop the process: another instance took the transactional id over (fenced), the credentials may
    /// not use it, or the error is not a transaction error at all.
    Stop,
}

/// Classifies a transaction call's error from librdkafka's flags and code.
pub fn transaction_action(
    code: RDKafkaErrorCode,
    fatal: bool,
    retriable: bool,
    abortable: bool,
) -> TransactionAction {
    use RDKafkaErrorCode as C;
    if fatal {
        match code {
            C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::TransactionalIdAuthorizationFailed
            | C::ClusterAuthorizationFailed => TransactionAction::Stop,
            _ => TransactionAction::ReplaceProducer,
        }
    } else if abortable {
        TransactionAction::Abort
    } else if retriable {
        TransactionAction::Retry
    } else {
        TransactionAction::Stop
    }
}

/// The `action` decided for a transaction call's `error`, revised knowing how long ago the transaction
/// began.
///
/// librdkafka reports two different events as the same fatal `_FENCED`: another producer took the
/// transactional id over (a zombie's replacement started: stop, as [`transaction_action`] says), and the
/// coordinator aborted this producer's transaction because it outlived `transaction.timeout.ms`, bumping the
/// producer's epoch (`INVALID_PRODUCER_EPOCH`, KIP-588), which a coordinator failover longer than the
/// timeout causes: the transaction could not commit while its coordinator was away. The second is no
/// reason to stop: a new producer with the same transactional id carries on. The transaction's age tells
/// them apart: a transaction younger than the timeout cannot have timed out, so its fence is another
/// producer's. An older one is replaced; if another producer did hold the id, the two fence each other
/// until the engine's replacement budget stops one, and the group generation in every offset commit keeps
/// the data exactly once meanwhile.
pub fn transaction_action_at_age(
    action: TransactionAction,
    error: &KafkaError,
    age: Duration,
    timeout: Duration,
) -> TransactionAction {
    use RDKafkaErrorCode as C;
    let timed_out_fence = matches!(
        error.rdkafka_error_code(),
        Some(C::Fenced | C::InvalidProducerEpoch)
    );
    if action == TransactionAction::Stop && timed_out_fence && age >= timeout {
        TransactionAction::ReplaceProducer
    } else {
        action
    }
}

/// [`transaction_action`] of a transaction call's error; errors of other kinds stop the process, except
/// the one that [`transaction_error_retriable`] calls retriable.
pub fn transaction_error_action(error: &KafkaError) -> TransactionAction {
    match error {
        KafkaError::Transaction(error) => transaction_action(
            error.code(),
            error.is_fatal(),
            error.is_retriable(),
            error.txn_requires_abort(),
        ),
        _ if transaction_error_retriable(error) => TransactionAction::Retry,
        _ => TransactionAction::Stop,
    }
}

/// Whether calling the failed transaction call again resumes it: librdkafka says so of its own errors;
/// and rust-rdkafka's `commit_transaction` flushes before librdkafka's commit, so a flush that timed out
/// while the broker was away (`Flush(OperationTimedOut)`) is the commit's own retriable timeout reported
/// early: the records are still queued, and the next call flushes on.
pub fn transaction_error_retriable(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(error) => error.is_retriable(),
        KafkaError::Flush(code) => *code == RDKafkaErrorCode::OperationTimedOut,
        _ => false,
    }
}

/// Classifies a delivery failure to a plugin topic.
pub fn classify_plugin_failure(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::PurgeQueue | C::PurgeInflight) => Failure::Purged,
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::PolicyViolation
            | C::TopicAuthorizationFailed
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::InvalidTopic,
        ) => Failure::RecordSpecific,
        _ => Failure::Transient,
    }
}

/// Classifies a delivery failure to the dead-letter topic. Only a failure tied to the record's content
/// (its size, a policy) is record-specific there; a missing or forbidden dead-letter topic is an outage of
/// the router's own infrastructure and is retried.
pub fn classify_dead_letter_failure(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::PurgeQueue | C::PurgeInflight) => Failure::Purged,
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord | C::PolicyViolation) => {
            Failure::RecordSpecific
        }
        _ => Failure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn a_fence_of_a_transaction_older_than_its_timeout_replaces_the_producer() {
        use RDKafkaErrorCode as C;
        use TransactionAction as A;
        let timeout = Duration::from_secs(10);
        let (young, old) = (Duration::from_secs(3), Duration::from_secs(19));
        // What librdkafka hands over: a fatal transaction error whose code is the normalised _FENCED.
        let fenced = production(C::Fenced);
        let at = |action, error: &KafkaError, age| transaction_action_at_age(action, error, age, timeout);
        assert_eq!(at(A::Stop, &fenced, old), A::ReplaceProducer);
        assert_eq!(at(A::Stop, &fenced, young), A::Stop);
        assert_eq!(
            at(A::Stop, &production(C::InvalidProducerEpoch), old),
            A::ReplaceProducer
        );
        // Kafka's own word for a takeover, and authorization, stop at any age.
        for code in [C::ProducerFenced, C::TransactionalIdAuthorizationFailed] {
            assert_eq!(at(A::Stop, &production(code), old), A::Stop, "{code:?}");
        }
        // Every other decision stands.
        for action in [A::Retry, A::Abort, A::ReplaceProducer] {
            assert_eq!(at(action, &fenced, old), action);
        }
        assert_eq!(
            at(A::Stop, &production(C::InvalidTransactionalState), old),
            A::Stop
        );
    }

    fn production(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn transaction_errors_are_retried_aborted_survived_by_a_new_producer_or_fatal() {
        use RDKafkaErrorCode as C;
        use TransactionAction as A;
        assert_eq!(
            transaction_action(C::CoordinatorLoadInProgress, false, true, false),
            A::Retry
        );
        assert_eq!(
            transaction_action(C::UnknownTopicOrPartition, false, false, true),
            A::Abort
        );
        // Abortable wins over retriable: the transaction is already lost.
        assert_eq!(
            transaction_action(C::MessageTimedOut, false, true, true),
            A::Abort
        );
        // librdkafka issue 4849: the abort after a deleted topic's AddPartitionsToTxn failure.
        assert_eq!(
            transaction_action(C::InvalidTransactionalState, true, false, false),
            A::ReplaceProducer
        );
        assert_eq!(
            transaction_action(C::InvalidTransactionalState, false, false, false),
            A::Stop
        );
        for fenced in [C::Fenced, C::ProducerFenced, C::InvalidProducerEpoch] {
            assert_eq!(
                transaction_action(fenced, true, false, false),
                A::Stop,
                "{fenced:?}"
            );
        }
        assert_eq!(
            transaction_action(C::TransactionalIdAuthorizationFailed, true, false, false),
            A::Stop
        );
        assert_eq!(
            transaction_error_action(&KafkaError::MessageProduction(C::InvalidTransactionalState)),
            A::Stop
        );
        // The flush before commit_transaction timed out (the broker is away): the commit is retried.
        let flush = KafkaError::Flush(C::OperationTimedOut);
        assert!(transaction_error_retriable(&flush));
        assert_eq!(transaction_error_action(&flush), A::Retry);
        assert!(!transaction_error_retriable(&KafkaError::Flush(C::Fenced)));
    }

    #[test]
    fn failure_classes() {
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::UnknownTopicOrPartition)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::MessageTimedOut)),
            Failure::Transient
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::PurgeQueue)),
            Failure::Purged
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::UnknownTopicOrPartition)),
            Failure::Transient
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Transient
        );
    }
}
