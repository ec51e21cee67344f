import XCTest

/// The HTTP API behaviours on the embedded default, a SQLite file.
final class SQLiteIntegrationTests: XCTestCase {
    func testIngestedPeopleGetConsistentDistinctIDs() async throws { try await Scenarios.ingestedPeopleGetConsistentDistinctIDs(.sqlite) }
    func testNoFacePhotoIsMarkedNoFaces() async throws { try await Scenarios.noFacePhotoIsMarked(.sqlite) }
    func testFailedPhotoIsRetriedUntilProcessed() async throws { try await Scenarios.failedPhotoIsRetriedUntilProcessed(.sqlite) }
    func testStaleProcessingIsResetAndRetried() async throws { try await Scenarios.staleProcessingIsResetAndRetried(.sqlite) }
    func testBusyMLServiceIsNotAFailure() async throws { try await Scenarios.busyMLServiceIsNotAFailure(.sqlite) }
    func testReingestOfOverlappingFolderKeepsIDs() async throws { try await Scenarios.reingestOfOverlappingFolderKeepsIDs(.sqlite) }
    func testDuplicateCallbackIsIdempotent() async throws { try await Scenarios.duplicateCallbackIsIdempotent(.sqlite) }
    func testConcurrentCallbacksCreateOnePersonForOneNewFace() async throws { try await Scenarios.concurrentCallbacksCreateOnePersonForOneNewFace(.sqlite) }
    func testIndexRestartsFromSnapshotAndCatchesUp() async throws { try await ScaleScenarios.indexRestartsFromSnapshotAndCatchesUp(.sqlite) }
    func testNewSnapshotReplacesTheOldOne() async throws { try await ScaleScenarios.newSnapshotReplacesTheOldOne(.sqlite) }
    func testGroupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread() async throws { try await ScaleScenarios.groupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread(.sqlite) }
    func testReclusterIsCurrentUntilTheLibraryChanges() async throws { try await ScaleScenarios.reclusterIsCurrentUntilTheLibraryChanges(.sqlite) }
    func testBadInputGetsClearErrors() async throws { try await Scenarios.badInputGetsClearErrors(.sqlite) }
    func testInterruptedIngestResumesFromLastCompletedBatch() async throws { try await OperationsScenarios.interruptedIngestResumesFromLastCompletedBatch(.sqlite) }
    func testUpdateStatusFollowsTheSpec() async throws { try await OperationsScenarios.updateStatusFollowsTheSpec(.sqlite) }
    func testClassifyPhotoIsSynchronous() async throws { try await OperationsScenarios.classifyPhotoIsSynchronous(.sqlite) }
    func testPersonDumpIsProtectedAndPaged() async throws { try await OperationsScenarios.personDumpIsProtectedAndPaged(.sqlite) }
    func testHealthAndMetricsReport() async throws { try await OperationsScenarios.healthAndMetricsReport(.sqlite) }
    func testChangedFileIsReprocessedUnderItsID() async throws { try await Scenarios.changedFileIsReprocessedUnderItsID(.sqlite) }
    func testResultsOfAnotherModelAreRefused() async throws { try await ModelScenarios.resultsOfAnotherModelAreRefused(.sqlite) }
    func testReprocessWithSameModelKeepsEveryID() async throws { try await ModelScenarios.reprocessWithSameModelKeepsEveryID(.sqlite) }
    func testReprocessSwitchesModelKeepingIDs() async throws { try await ModelScenarios.reprocessSwitchesModelKeepingIDs(.sqlite) }
    func testInterruptedReprocessResumesWithoutRedoingPhotos() async throws { try await ModelScenarios.interruptedReprocessResumesWithoutRedoingPhotos(.sqlite) }
    func testCorrectionsSurviveReclusterAndReingest() async throws { try await PeopleScenarios.correctionsSurviveReclusterAndReingest(.sqlite) }
    func testBadCorrectionsAreRefusedAndChangeNothing() async throws { try await PeopleScenarios.badCorrectionsAreRefusedAndChangeNothing(.sqlite) }
    func testConcurrentCorrectionsAndCallbacksLoseNothing() async throws { try await PeopleScenarios.concurrentCorrectionsAndCallbacksLoseNothing(.sqlite) }
    func testListingReviewAndDumpReflectCorrections() async throws { try await PeopleScenarios.listingReviewAndDumpReflectCorrections(.sqlite) }
    func testPeopleListLeavesOutOnePhotoPersonsUntilAskedForAll() async throws { try await PeopleScenarios.peopleListLeavesOutOnePhotoPersonsUntilAskedForAll(.sqlite) }
    func testReviewAsksTheQuestionEachAnswerSettles() async throws { try await PeopleScenarios.reviewAsksTheQuestionEachAnswerSettles(.sqlite) }
    func testIDsStayStableAsTheLibraryGrows() async throws { try await PeopleScenarios.idsStayStableAsTheLibraryGrows(.sqlite) }
    func testEmptiedPersonIDsAreNeverReused() async throws { try await PeopleScenarios.emptiedPersonIDsAreNeverReused(.sqlite) }
    func testCorrectionsSurviveAReprocess() async throws { try await PeopleScenarios.correctionsSurviveAReprocess(.sqlite) }
    func testWritesNeedTheSharedSecret() async throws { try await PeopleScenarios.writesNeedTheSharedSecret(.sqlite) }
    func testImagesFromCallbacksAreServedFromStorage() async throws { try await WebScenarios.imagesFromCallbacksAreServedFromStorage(.sqlite) }
    func testOlderDatabasesGetImagesLazilyOncePerPhoto() async throws { try await WebScenarios.olderDatabasesGetImagesLazilyOncePerPhoto(.sqlite) }
    func testWebPageIsServedWithItsFiles() async throws { try await WebScenarios.webPageIsServedWithItsFiles(.sqlite) }
    func testCrossSiteWritesAreRefused() async throws { try await WebScenarios.crossSiteWritesAreRefused(.sqlite) }
    func testApiTokenGuardsEveryPageAndCall() async throws { try await WebScenarios.apiTokenGuardsEveryPageAndCall(.sqlite) }
    func testJobFailuresListEachPhotoWithItsReason() async throws { try await WebScenarios.jobFailuresListEachPhotoWithItsReason(.sqlite) }
    func testReprocessStoresNewImagesAndDropsOrphans() async throws { try await WebScenarios.reprocessStoresNewImagesAndDropsOrphans(.sqlite) }
    func testDeadMLServiceIsSkippedForALiveOne() async throws { try await Scenarios.deadMLServiceIsSkippedForALiveOne(.sqlite) }
    func testPersonDumpServesChangesSinceASequence() async throws { try await OperationsScenarios.personDumpServesChangesSinceASequence(.sqlite) }
    func testPhotosCarryTheirTakenDates() async throws { try await FindPhotosScenarios.photosCarryTheirTakenDates(.sqlite) }
    func testPhotosFoundByPeopleDatesAndOrder() async throws { try await FindPhotosScenarios.photosFoundByPeopleDatesAndOrder(.sqlite) }
    func testTakenOrderPagingSurvivesPhotosBeingAdded() async throws { try await FindPhotosScenarios.takenOrderPagingSurvivesPhotosBeingAdded(.sqlite) }
    func testPeopleInPhotosCountsEachPerson() async throws { try await FindPhotosScenarios.peopleInPhotosCountsEachPerson(.sqlite) }
    func testNextScanDatesPhotosAnalysedBefore() async throws { try await FindPhotosScenarios.nextScanDatesPhotosAnalysedBefore(.sqlite) }
    func testBadPhotoQueriesAreRefused() async throws { try await FindPhotosScenarios.badPhotoQueriesAreRefused(.sqlite) }
}
