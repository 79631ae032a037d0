@device @robustness
Feature: Robustness against malformed and unknown tasks
  A task the device cannot use gets a non-zero code where it carries a
  request_id, and the device keeps polling.

  Scenario Outline: The device survives a bad task (<kind>)
    Given the device under test is polling the reference server
    When the server queues a <kind> task
    Then the device reports the result with a non-zero code
    And the device keeps polling
    And the device broke no rule

    Examples:
      | kind      |
      | malformed |
      | unknown   |
      | oversized |

  Scenario: The device survives answers that are not JSON
    Given the device under test is polling the reference server
    When the server answers garbage for a while
    Then the device keeps polling
