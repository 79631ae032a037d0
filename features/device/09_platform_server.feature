@device @platform_server
Feature: setPlatformServer moves the device
  The device reports the result to the old server, then polls the new one
  (§2.11, errata #22).

  @needs:task=setPlatformServer
  Scenario: The device moves to a second server and back
    Given the device under test is polling the reference server
    When the server tells the device to move to the second server
    And the second server has the move back queued
    Then the device reports the result with code 0
    And the device polls the second server
    And the device reports the move back with code 0
    And the device polls the reference server again
    And the device broke no rule
