/// Rule: attempts are counted in Redis, so a task redelivered after a crash continues its
/// count; when every attempt was cut short by a dying worker, the task fails for good
/// instead of crash-looping the fleet.
public enum ExhaustedAttempts {
    /// The error recorded for a task whose `attempts` were all interrupted.
    public static func reason(attempts: Int) -> String {
        "all \(attempts) attempts were interrupted before they finished (a worker died while running this task)"
    }
}
