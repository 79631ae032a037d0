@server @tasks
Feature: The server sends valid tasks and accepts their results
  A server can only be made to send a task by its own UI or API: the trigger
  file says how (an HTTP call, or "manual" for the operator).

  @needs:task=<task>
  Scenario Outline: The server sends a valid <task> and accepts its result
    Given the reference device polls the server under test
    When the platform is made to queue "<task>" for the device
    Then the device receives a valid "<task>"
    And the server accepted the device's result
    And the server broke no rule

    Examples:
      | task              |
      | addUser           |
      | updateUser        |
      | deleteUser        |
      | setDevTime        |
      | setScreenSave     |
      | upgrade           |
      | getLogFile        |
      | getDevStatus      |
      | delUserList       |
      | setResumeTransfer |
      | faceCmd           |
      | SetFaceConfig     |

  Scenario: request_ids are unique
    Given the reference device polls the server under test
    When the platform is made to queue any task for the device
    And the platform is made to queue any task for the device
    Then the device receives 2 tasks with distinct request_ids
    And the server broke no rule
