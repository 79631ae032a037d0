@server @robustness
Feature: Failures servers in the field are known to have
  A server must refuse or neutralise hostile input, and answer malformed
  device messages with a 4xx or a clear error, never a 5xx or a hang
  (NOTES: what devices and servers in the field are known to do).

  Scenario: A taskResult carrying another device's request_id is not accepted
    Given the reference device polls the server under test
    When the platform is made to queue any task for a second device
    And the second device polls and receives it
    And the reference device reports a result for that task
    Then the server refused the other device's result

  Scenario Outline: A capture whose frpic_name is <kind> is refused or neutralised
    Given the reference device polls the server under test
    When a capture with frpic_name <name> is uploaded
    Then the server did not fail on it

    Examples:
      | kind          | name             |
      | a parent path | "../../x.php"    |
      | absolute      | "/etc/passwd"    |
      | with NUL      | "a\u0000.jpg"    |

  Scenario Outline: A malformed <endpoint> message gets a 4xx or a clear error
    Given the reference device polls the server under test
    When a <body> body is posted to <endpoint>
    Then the server did not fail on it

    Examples:
      | endpoint        | body      |
      | taskRequest     | not-json  |
      | taskResult      | empty     |
      | faceRecognition | wrong-types |
      | deviceAlarm     | not-json  |
