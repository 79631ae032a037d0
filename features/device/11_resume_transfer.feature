@device @resume
Feature: Resume transfer across an outage
  With setResumeTransfer enabled, captures that could not be delivered are
  kept and replayed in order once the server is back (断网续传, §2.10).

  @needs:task=setResumeTransfer @needs:resume_transfer
  Scenario: Captures made during an outage arrive afterwards, in order, once each
    Given the device under test is polling the reference server
    When the server queues "setResumeTransfer" with "enable" set to 1
    And the device reports the result with code 0
    And the server refuses connections for a while
    And the device makes 3 captures during the outage
    And the server is back
    Then the 3 captures arrive in order without duplicates
    And the device broke no rule
