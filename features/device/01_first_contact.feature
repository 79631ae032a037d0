@device @first_contact
Feature: First contact and the taskRequest poll
  The device polls POST /taskRequest with its identity and clock (§1.1). The
  reference server answers with a task, or idleTime when none is queued.

  Scenario: The device polls with every required field
    Given the device under test is polling the reference server
    Then every taskRequest so far carried every required field with the right type
    And the device broke no rule since its first poll

  @needs:task=getDevStatus
  Scenario: The device accepts a task on its first polls
    Given the device under test is polling the reference server
    When the server queues "getDevStatus"
    Then the device reports the result with code 0
    And the device broke no rule
