@server @polling
Feature: The server answers taskRequest
  Every poll gets one task or idleTime with time_stamp (§2, §2.4); request_ids
  are unique (§2 唯一 id).

  Scenario: A spec-only device is served
    Given the reference device polls the server under test
    Then the server answered every poll with a valid task or idleTime
    And the server broke no rule

  Scenario: An unknown device id is served or refused cleanly
    Given the reference device polls the server under test
    When a device the server never saw polls once
    Then the server answered it with a valid task, idleTime or a 4xx
