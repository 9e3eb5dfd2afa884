import CRdKafka

/// Rule: which broker errors a worker waits out, as it waits for Redis, and which end it. A
/// broker that cannot be reached, or does not answer in time, may come (back) at any moment: a
/// worker started with it, or before it, must not exit. An error that waiting cannot mend (an
/// invalid topic name, a refused authorisation, a setting librdkafka rejects) fails at once.
public enum BrokerOutage {
    /// Whether waiting may mend `error`: a ``YADTQError`` of the broker with one of
    /// librdkafka's codes for a broker that is away, slow or moving.
    public static func isWaitable(_ error: any Error) -> Bool {
        guard let error = error as? YADTQError, error.area == .kafka, let code = error.libraryCode else { return false }
        return isWaitable(libraryCode: code)
    }

    /// Whether librdkafka's `code` (an `rd_kafka_resp_err_t`) is one of a broker that is away,
    /// slow or moving.
    public static func isWaitable(libraryCode code: Int32) -> Bool {
        waitableCodes.contains(code)
    }

    private static let waitableCodes: Set<Int32> = Set(
        [
            // librdkafka's own: no connection, no answer in time, no coordinator yet.
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR__WAIT_COORD,
            // The broker's: it is starting, electing leaders, or moving a coordinator.
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_CONTROLLER,
        ].map(\.rawValue))
}
