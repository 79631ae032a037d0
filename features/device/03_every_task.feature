@device @tasks
Feature: Every task gets exactly one result
  Each task the server sends carries a request_id; the device reports exactly
  one taskResult with that id and its device_id (§3). idleTime has none.

  @needs:task=<task>
  Scenario Outline: <task> is executed and reported
    Given the device under test is polling the reference server
    When the server queues "<task>"
    Then the device reports the result with code <code>
    And the result of "<task>" matches its result schema
    And the device broke no rule

    Examples: tasks that succeed on a conforming device
      | task              | code |
      | addUser           | 0    |
      | updateUser        | 0    |
      | deleteUser        | any  |
      | setDevTime        | 0    |
      | setScreenSave     | 0    |
      | getLogFile        | 0    |
      | getDevStatus      | 0    |
      | delUserList       | 0    |
      | setResumeTransfer | 0    |
      | faceCmd           | 0    |
      | SetFaceConfig     | 0    |

    Examples: tasks a conforming device refuses with our harmless file
      | task    | code     |
      | upgrade | non-zero |
