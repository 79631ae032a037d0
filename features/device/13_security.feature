@device @security
Feature: Security: a log file is named by a file name, never by a path
  getLogFile's log_name (§2.7) names a log file of the device; through a path
  a server could read any file the firmware can (errata #28). A device
  refuses a log_name that is a path: a non-zero code and no file content.

  @needs:task=getLogFile
  Scenario Outline: A getLogFile with log_name <name> is refused
    Given the device under test is polling the reference server
    When the server asks for the log file "<name>"
    Then the device refuses it with no file content in log_info
    And the device keeps polling

    Examples:
      | name             |
      | ../../etc/passwd |
      | /etc/passwd      |
      | ..∕..∕etc∕passwd |
