@device @cadence
Feature: Polling cadence
  After idleTime the device waits 20 s before the next taskRequest; after any
  other task, 5 s (工作流程). Tolerance: ±25 % plus 0.05 s, scaled by the
  time scale for simulators.

  # Busy before idle: the busy scenario ends on an observed poll answered idleTime,
  # which the idle scenario counts as its first, instead of waiting out a third.
  Scenario: Busy cadence is 5 seconds
    Given the device under test is polling the reference server
    When the server queues "getDevStatus"
    And the device reports the result with code 0
    And the server queues "getDevStatus"
    And the device reports the result with code 0
    Then the gap after the first task was 5 s within tolerance
    And the device broke no rule

  Scenario: Idle back-off is 20 seconds
    Given the device under test is polling the reference server
    When the device is answered idleTime twice
    Then the gaps after idleTime were 20 s within tolerance
    And the device broke no rule
