import XCTest

/// The HTTP API behaviours on the embedded default, a Postgres file.
final class PostgresIntegrationTests: XCTestCase {
    func testIngestedPeopleGetConsistentDistinctIDs() async throws { try await Scenarios.ingestedPeopleGetConsistentDistinctIDs(.postgres) }
    func testNoFacePhotoIsMarkedNoFaces() async throws { try await Scenarios.noFacePhotoIsMarked(.postgres) }
    func testFailedPhotoIsRetriedUntilProcessed() async throws { try await Scenarios.failedPhotoIsRetriedUntilProcessed(.postgres) }
    func testStaleProcessingIsResetAndRetried() async throws { try await Scenarios.staleProcessingIsResetAndRetried(.postgres) }
    func testBusyMLServiceIsNotAFailure() async throws { try await Scenarios.busyMLServiceIsNotAFailure(.postgres) }
    func testReingestOfOverlappingFolderKeepsIDs() async throws { try await Scenarios.reingestOfOverlappingFolderKeepsIDs(.postgres) }
    func testDuplicateCallbackIsIdempotent() async throws { try await Scenarios.duplicateCallbackIsIdempotent(.postgres) }
    func testConcurrentCallbacksCreateOnePersonForOneNewFace() async throws { try await Scenarios.concurrentCallbacksCreateOnePersonForOneNewFace(.postgres) }
    func testIndexRestartsFromSnapshotAndCatchesUp() async throws { try await ScaleScenarios.indexRestartsFromSnapshotAndCatchesUp(.postgres) }
    func testNewSnapshotReplacesTheOldOne() async throws { try await ScaleScenarios.newSnapshotReplacesTheOldOne(.postgres) }
    func testGroupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread() async throws { try await ScaleScenarios.groupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread(.postgres) }
    func testReclusterIsCurrentUntilTheLibraryChanges() async throws { try await ScaleScenarios.reclusterIsCurrentUntilTheLibraryChanges(.postgres) }
    func testBadInputGetsClearErrors() async throws { try await Scenarios.badInputGetsClearErrors(.postgres) }
    func testInterruptedIngestResumesFromLastCompletedBatch() async throws { try await OperationsScenarios.interruptedIngestResumesFromLastCompletedBatch(.postgres) }
    func testUpdateStatusFollowsTheSpec() async throws { try await OperationsScenarios.updateStatusFollowsTheSpec(.postgres) }
    func testClassifyPhotoIsSynchronous() async throws { try await OperationsScenarios.classifyPhotoIsSynchronous(.postgres) }
    func testPersonDumpIsProtectedAndPaged() async throws { try await OperationsScenarios.personDumpIsProtectedAndPaged(.postgres) }
    func testHealthAndMetricsReport() async throws { try await OperationsScenarios.healthAndMetricsReport(.postgres) }
    func testChangedFileIsReprocessedUnderItsID() async throws { try await Scenarios.changedFileIsReprocessedUnderItsID(.postgres) }
    func testResultsOfAnotherModelAreRefused() async throws { try await ModelScenarios.resultsOfAnotherModelAreRefused(.postgres) }
    func testReprocessWithSameModelKeepsEveryID() async throws { try await ModelScenarios.reprocessWithSameModelKeepsEveryID(.postgres) }
    func testReprocessSwitchesModelKeepingIDs() async throws { try await ModelScenarios.reprocessSwitchesModelKeepingIDs(.postgres) }
    func testInterruptedReprocessResumesWithoutRedoingPhotos() async throws { try await ModelScenarios.interruptedReprocessResumesWithoutRedoingPhotos(.postgres) }
    func testCorrectionsSurviveReclusterAndReingest() async throws { try await PeopleScenarios.correctionsSurviveReclusterAndReingest(.postgres) }
    func testBadCorrectionsAreRefusedAndChangeNothing() async throws { try await PeopleScenarios.badCorrectionsAreRefusedAndChangeNothing(.postgres) }
    func testConcurrentCorrectionsAndCallbacksLoseNothing() async throws { try await PeopleScenarios.concurrentCorrectionsAndCallbacksLoseNothing(.postgres) }
    func testListingReviewAndDumpReflectCorrections() async throws { try await PeopleScenarios.listingReviewAndDumpReflectCorrections(.postgres) }
    func testPeopleListLeavesOutOnePhotoPersonsUntilAskedForAll() async throws { try await PeopleScenarios.peopleListLeavesOutOnePhotoPersonsUntilAskedForAll(.postgres) }
    func testReviewAsksTheQuestionEachAnswerSettles() async throws { try await PeopleScenarios.reviewAsksTheQuestionEachAnswerSettles(.postgres) }
    func testIDsStayStableAsTheLibraryGrows() async throws { try await PeopleScenarios.idsStayStableAsTheLibraryGrows(.postgres) }
    func testEmptiedPersonIDsAreNeverReused() async throws { try await PeopleScenarios.emptiedPersonIDsAreNeverReused(.postgres) }
    func testCorrectionsSurviveAReprocess() async throws { try await PeopleScenarios.correctionsSurviveAReprocess(.postgres) }
    func testWritesNeedTheSharedSecret() async throws { try await PeopleScenarios.writesNeedTheSharedSecret(.postgres) }
    func testOtherInstancesCatchUpWithCorrections() async throws { try await PeopleScenarios.otherInstancesCatchUpWithCorrections() }
    func testImagesFromCallbacksAreServedFromStorage() async throws { try await WebScenarios.imagesFromCallbacksAreServedFromStorage(.postgres) }
    func testOlderDatabasesGetImagesLazilyOncePerPhoto() async throws { try await WebScenarios.olderDatabasesGetImagesLazilyOncePerPhoto(.postgres) }
    func testReprocessStoresNewImagesAndDropsOrphans() async throws { try await WebScenarios.reprocessStoresNewImagesAndDropsOrphans(.postgres) }
    func testOtherInstancesForgetFacesOfAChangedFile() async throws { try await PeopleScenarios.otherInstancesForgetFacesOfAChangedFile() }
    func testDeadMLServiceIsSkippedForALiveOne() async throws { try await Scenarios.deadMLServiceIsSkippedForALiveOne(.postgres) }
    func testPersonDumpServesChangesSinceASequence() async throws { try await OperationsScenarios.personDumpServesChangesSinceASequence(.postgres) }
    func testInstancesStartingTogetherShareOneSchema() async throws { try await OperationsScenarios.instancesStartingTogetherShareOneSchema() }
    func testPhotosCarryTheirTakenDates() async throws { try await FindPhotosScenarios.photosCarryTheirTakenDates(.postgres) }
    func testPhotosFoundByPeopleDatesAndOrder() async throws { try await FindPhotosScenarios.photosFoundByPeopleDatesAndOrder(.postgres) }
    func testTakenOrderPagingSurvivesPhotosBeingAdded() async throws { try await FindPhotosScenarios.takenOrderPagingSurvivesPhotosBeingAdded(.postgres) }
    func testPeopleInPhotosCountsEachPerson() async throws { try await FindPhotosScenarios.peopleInPhotosCountsEachPerson(.postgres) }
    func testNextScanDatesPhotosAnalysedBefore() async throws { try await FindPhotosScenarios.nextScanDatesPhotosAnalysedBefore(.postgres) }
    func testBadPhotoQueriesAreRefused() async throws { try await FindPhotosScenarios.badPhotoQueriesAreRefused(.postgres) }
}
