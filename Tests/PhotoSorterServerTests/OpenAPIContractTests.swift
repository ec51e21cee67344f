import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import Vapor
import XCTest

/// The OpenAPI document (`Sources/PhotoSorterServer/OpenAPI/openapi.json`) describes exactly the routes the service
/// registers, and the service serves it. What the routes answer is checked against it by schemathesis in
/// e2e/test_api_contract.py.
final class OpenAPIContractTests: XCTestCase {
    private static let methods = ["get", "put", "post", "delete", "patch", "head", "options"]

    private func documentedOperations(_ document: [String: Any]) throws -> Set<String> {
        let paths = try XCTUnwrap(document["paths"] as? [String: [String: Any]], "the document has no paths")
        var operations = Set<String>()
        for (path, item) in paths {
            for method in item.keys where Self.methods.contains(method) {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }

    /// `METHOD /a/{param}` for every registered route (Vapor's `:param` written the OpenAPI way).
    private func registeredOperations(_ app: Application) -> Set<String> {
        Set(app.routes.all.filter { $0.method != .HEAD }.map { route in
            let path = route.path.map { component -> String in
                switch component {
                case .parameter(let name): "{\(name)}"
                default: component.description
                }
            }
            return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
        })
    }

    func testEveryRouteIsDocumentedAndEveryDocumentedOperationIsARoute() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            let document = try JSONSerialization.jsonObject(with: try OpenAPIController.load().document) as? [String: Any]
            let documented = try documentedOperations(try XCTUnwrap(document))
            let registered = registeredOperations(service.app)
            XCTAssertEqual(registered.subtracting(documented).sorted(), [], "routes missing from openapi.json")
            XCTAssertEqual(documented.subtracting(registered).sorted(), [], "documented operations that are not routes")
        }
    }

    /// `x-face-models` is the model list the ML service's tests read (names, embedders, dimensions, identity rule):
    /// it must be the core's `FaceModel.all`, so the two languages cannot disagree on a model or a threshold.
    func testTheDocumentedFaceModelsAreTheCoresModels() throws {
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: try OpenAPIController.load().document) as? [String: Any])
        let documented = try XCTUnwrap(document["x-face-models"] as? [[String: Any]], "openapi.json has no x-face-models")
        XCTAssertEqual(documented.map { $0["name"] as? String }, FaceModel.all.map(\.name))
        for (entry, model) in zip(documented, FaceModel.all) {
            XCTAssertEqual(entry["embedder"] as? String, model.embedder, model.name)
            XCTAssertEqual(entry["dimension"] as? Int, model.dimension, model.name)
            for (key, value) in [("match_threshold", model.policy.matchThreshold), ("small_person_margin", model.policy.smallPersonMargin),
                                 ("mirror_threshold", model.policy.mirrorThreshold)] {
                let given = try XCTUnwrap(entry[key] as? Double, "\(model.name) \(key)")
                XCTAssertEqual(Float(given), value, "\(model.name) \(key)")
            }
        }
    }

    func testEveryReferenceInTheDocumentResolves() throws {
        let data = try OpenAPIController.load().document
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(document["openapi"] as? String, "3.1.0")
        var unresolved: [String] = []
        func visit(_ value: Any) {
            if let object = value as? [String: Any] {
                if let ref = object["$ref"] as? String {
                    var target: Any? = document
                    for key in ref.dropFirst(2).split(separator: "/") { target = (target as? [String: Any])?[String(key)] }
                    if target == nil { unresolved.append(ref) }
                }
                object.values.forEach(visit)
            } else if let array = value as? [Any] {
                array.forEach(visit)
            }
        }
        visit(document)
        XCTAssertEqual(unresolved, [])
    }

    func testServesTheDocumentAtOpenAPIJSON() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            let reply = try await service.request(.GET, "/openapi.json")
            XCTAssertEqual(reply.status, .ok)
            XCTAssertEqual(reply.headers.contentType?.subType, "json")
            XCTAssertEqual(reply.body, try OpenAPIController.load().document)
        }
    }
}
