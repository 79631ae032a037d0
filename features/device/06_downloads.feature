@device @downloads
Feature: Tasks that make the device download files
  addUser with image_type URL, setScreenSave and upgrade point the device at
  http URLs; the device fetches exactly those files (§2.1, §2.5, §2.6).

  @needs:task=<task>
  Scenario Outline: <task> makes the device fetch its files
    Given the device under test is polling the reference server
    When the server queues "<task>" pointing at the reference assets
    Then the device reports the result with code <code>
    And the device fetched exactly the files of the task
    And the device broke no rule

    Examples:
      | task          | code     |
      | addUser       | 0        |
      | setScreenSave | 0        |
      | upgrade       | non-zero |
