@device @users
Feature: The face database follows the document's semantics
  addUser fails for an existing user_id; updateUser updates or adds;
  deleteUser and delUserList remove (§2.1, §2.2, §2.9).

  @needs:task=addUser @needs:task=getDevStatus
  Scenario: addUser adds a face that getDevStatus counts
    Given the device under test is polling the reference server
    And the device's face count is known
    When the server adds a new user by base64 image
    Then the device reports the result with code 0
    And the device's face count is one more

  @needs:task=addUser
  Scenario: addUser of an existing user_id fails for that user
    Given the device under test is polling the reference server
    And a user exists on the device
    When the server adds the same user again
    Then the device reports the result with a non-zero code
    And the device broke no rule

  @needs:task=updateUser @needs:task=getDevStatus
  Scenario: updateUser upserts
    Given the device under test is polling the reference server
    And the device's face count is known
    When the server updates a user the device does not have
    Then the device reports the result with code 0
    And the device's face count is one more

  @needs:task=addUser @needs:task=deleteUser @needs:task=getDevStatus
  Scenario: deleteUser removes a user
    Given the device under test is polling the reference server
    And a user exists on the device
    And the device's face count is known
    When the server deletes that user
    Then the device reports the result with code 0
    And the device's face count is one less

  @needs:task=addUser @needs:task=delUserList @needs:task=getDevStatus
  Scenario: delUserList removes the whitelist
    Given the device under test is polling the reference server
    And a whitelist user exists on the device
    And the device's face count is known
    When the server queues "delUserList"
    Then the device reports the result with code 0
    And the device's face count is lower
    And the device broke no rule
