@device @clock
Feature: Clock, log and status
  setDevTime moves the clock the next taskRequest shows (§2.3, errata #21);
  getLogFile returns a log (§2.7); getDevStatus reports counts and versions.

  @needs:task=setDevTime
  Scenario: setDevTime moves the device clock
    Given the device under test is polling the reference server
    When the server sets the device clock one hour back
    Then the device reports the result with code 0
    And the next taskRequest carries the new clock
    And the device broke no rule

  @needs:task=getLogFile
  Scenario: getLogFile returns the device log
    Given the device under test is polling the reference server
    When the server queues "getLogFile"
    Then the device reports the result with code 0
    And the result carries a non-empty "log_info"

  @needs:task=getDevStatus
  Scenario: getDevStatus reports counts and versions
    Given the device under test is polling the reference server
    When the server queues "getDevStatus"
    Then the device reports the result with code 0
    And the result carries a non-empty "main_ver"
    And the device broke no rule
